"""HMAC-SHA-256-128 (RFC 8762 §4.4) and the keys the engines use.

STAMP defines no key derivation or distribution: a key is provisioned out of band, per
session.  Reading keys from files is the I/O layer's job (:mod:`stamp_suite.keys`); the
engines get a :class:`KeyStore` of bytes.
"""

from __future__ import annotations

import functools
import hmac as _hmac
from dataclasses import dataclass, field

HMAC_LEN = 16
MIN_KEY_LEN = 16  # local policy: RFC 8762 §4.4 sets no minimum


class KeyLoadError(ValueError):
    """A key could not be loaded; the message is one line, fit for the operator."""


def hmac16(key: bytes, data: bytes | memoryview) -> bytes:
    """HMAC-SHA-256 truncated to its first 128 bits (RFC 4868 style).

    A copy of a state keyed once per key: the key schedule (two SHA-256 blocks) is not redone
    for every packet, 0.8 us instead of hmac.digest's 1.4 us (two per authenticated packet)."""
    try:
        state = _keyed(key)
    except TypeError:  # unhashable: a bytearray or memoryview key (not an int: memoryview refuses it)
        state = _keyed(bytes(memoryview(key)))
    h = state.copy()
    h.update(data)
    return h.digest()[:HMAC_LEN]


def _public_state(key: bytes, digestmod: str):
    return _hmac.new(key, digestmod=digestmod)


try:  # OpenSSL's HMAC object: copy() is a C call (the hmac module's wrapper adds 0.4 us)
    from _hashlib import hmac_new as _new_state
except ImportError:  # a Python without OpenSSL: the public API, the same octets
    _new_state = _public_state


@functools.lru_cache(maxsize=256)
def _keyed(key: bytes):
    return _new_state(key, digestmod="sha256")


def verify16(key: bytes, data: bytes | memoryview, mac: bytes | memoryview) -> bool:
    """Constant-time comparison of the expected and received 16-octet HMAC."""
    return _hmac.compare_digest(hmac16(key, data), bytes(mac))


def parse_hex_key(text: str, origin: str = "--hmac-key") -> bytes:
    cleaned = "".join(text.split())
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    try:
        key = bytes.fromhex(cleaned)
    except ValueError:  # the message never quotes the text: it may be most of a key
        raise KeyLoadError(f"{origin}: not a hexadecimal key (only hex digits and white space allowed)") from None
    if len(key) < MIN_KEY_LEN:
        raise KeyLoadError(f"{origin}: key is {len(key)} octets, at least {MIN_KEY_LEN} are required")
    return key


@dataclass(frozen=True)
class KeyStore:
    """The keys a reflector or sender knows: one default key and optional per-SSID keys."""

    default: bytes | None = None
    by_ssid: dict[int, bytes] = field(default_factory=dict)

    def key_for(self, ssid: int) -> bytes | None:
        return self.by_ssid.get(ssid, self.default)

