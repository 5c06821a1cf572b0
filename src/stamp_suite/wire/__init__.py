"""Bytes <-> typed values for every STAMP structure.  No I/O, no clocks."""

from . import tlvs  # noqa: F401  (registers the typed TLVs)
