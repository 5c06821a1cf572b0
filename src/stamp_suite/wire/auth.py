"""HMAC-SHA-256-128 (RFC 8762 §4.4) and the keys the engines use.

STAMP defines no key derivation or distribution: a key is provisioned out of band, per
session.  Reading keys from files is the I/O layer's job (:mod:`stamp_suite.keys`); the
engines get a :class:`KeyStore` of bytes.
"""

from __future__ import annotations

import hmac as _hmac
from dataclasses import dataclass, field

HMAC_LEN = 16
MIN_KEY_LEN = 16  # local policy: RFC 8762 sets no minimum (digest §1.9)


class KeyLoadError(ValueError):
    """A key could not be loaded; the message is one line, fit for the operator."""


def hmac16(key: bytes, data: bytes | memoryview) -> bytes:
    """HMAC-SHA-256 truncated to its first 128 bits (RFC 4868 style).

    ``hmac.digest`` is OpenSSL's one-shot HMAC: about 40 % faster than hmac.new().digest().
    """
    return _hmac.digest(key, data, "sha256")[:HMAC_LEN]


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

    @property
    def empty(self) -> bool:
        return self.default is None and not self.by_ssid
