"""Bytes <-> typed values: timestamps, base packets, the TLV header and list, HMAC.  No I/O."""
