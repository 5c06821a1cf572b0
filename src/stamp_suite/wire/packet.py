"""Base STAMP test packets, both directions, open and authenticated (RFC 8762 §4.2-4.3).

The SSID sits right after the first Error Estimate (RFC 8972 §3).  TLVs, if any, start
at octet 44 (open) or 112 (authenticated, after the HMAC); they are kept here as raw
bytes and parsed by :mod:`stamp_suite.wire.tlv`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .auth import HMAC_LEN, hmac16

STAMP_PORT = 862  # the well-known port (RFC 8762 §4.1)
OPEN_BASE_LEN = 44
AUTH_BASE_LEN = 112
HMAC_COVERED = 96  # octets 0-95 (RFC 8762 §4.4)
# Fields a TWAMP-Light reflector must return at least: up to the Session-Sender Error
# Estimate of the open reply.  Some answer with exactly these 38 octets.
MIN_OPEN_REPLY_LEN = 38
OPEN_REPLY_TTL_AT = 40  # the Session-Sender TTL's octet: a shorter reply does not carry it

SENDER_OPEN = struct.Struct("!IQHH28x")
REFLECTOR_OPEN = struct.Struct("!IQHHQIQH2xB3x")
SENDER_AUTH = struct.Struct("!I12xQHH68x")  # HMAC (16) follows at 96
REFLECTOR_AUTH = struct.Struct("!I12xQHH4xQ8xI12xQH6xB15x")
# A Session-Sender packet read together with the octets where a Session-Reflector packet
# carries the Session-Sender Timestamp and Error Estimate it copied (MBZ in a test packet):
# a reflector that answers one of our replies copies our T3 and Error Estimate there, which
# is how the reflector recognises its own replies coming back (reflector/loop_guard.py).
SENDER_OPEN_WITH_COPIED = struct.Struct("!IQHH12xQH6x")  # seq, T1, EE, SSID, copied T3, copied EE
SENDER_AUTH_WITH_COPIED = struct.Struct("!I12xQHH36xQH22x")
assert SENDER_OPEN.size == REFLECTOR_OPEN.size == SENDER_OPEN_WITH_COPIED.size == OPEN_BASE_LEN
assert SENDER_AUTH.size == REFLECTOR_AUTH.size == SENDER_AUTH_WITH_COPIED.size == HMAC_COVERED


class MalformedPacket(ValueError):
    """The datagram cannot be a STAMP packet of the expected kind."""


@dataclass(frozen=True, slots=True)
class SenderPacket:
    """Session-Sender test packet (RFC 8762 Figs 3 and 4, RFC 8972 Figs 1 and 2)."""

    sequence_number: int
    timestamp: int  # T1, 64-bit wire value; its format is the Error Estimate's Z bit
    error_estimate: int
    ssid: int = 0
    tlvs: bytes = b""
    hmac: bytes = bytes(HMAC_LEN)  # authenticated mode only

    def to_bytes(self, key: bytes | None = None) -> bytes:
        """Open packet without a key; authenticated (HMAC over octets 0-95) with one."""
        if key is None:
            return SENDER_OPEN.pack(self.sequence_number, self.timestamp, self.error_estimate, self.ssid) + self.tlvs
        head = SENDER_AUTH.pack(self.sequence_number, self.timestamp, self.error_estimate, self.ssid)
        return head + hmac16(key, head) + self.tlvs

    @classmethod
    def from_bytes(cls, data: bytes, authenticated: bool = False) -> SenderPacket:
        """Parse a full-size packet; shorter data raises :class:`MalformedPacket`."""
        if authenticated:
            if len(data) < AUTH_BASE_LEN:
                raise MalformedPacket(f"authenticated packet needs {AUTH_BASE_LEN} octets, got {len(data)}")
            seq, ts, ee, ssid = SENDER_AUTH.unpack_from(data)
            return cls(seq, ts, ee, ssid, bytes(data[AUTH_BASE_LEN:]), bytes(data[96:112]))
        if len(data) < OPEN_BASE_LEN:
            raise MalformedPacket(f"open packet needs {OPEN_BASE_LEN} octets, got {len(data)}")
        seq, ts, ee, ssid = SENDER_OPEN.unpack_from(data)
        return cls(seq, ts, ee, ssid, bytes(data[OPEN_BASE_LEN:]))

    @classmethod
    def from_short(cls, data: bytes) -> SenderPacket:
        """A packet shorter than the open base (TWAMP-Light senders send 14 octets or so).

        The missing octets are taken as zero (RFC 8762 §4.6 leaves this open: docs/protocol.md).
        """
        return cls.from_bytes(bytes(data) + bytes(OPEN_BASE_LEN - len(data)))


@dataclass(slots=True)
class ReflectorPacket:
    """Session-Reflector test packet (RFC 8762 Figs 5 and 6, RFC 8972 Figs 3 and 4).  Not
    frozen: the sender parses one per reply, and a frozen dataclass costs six times as much
    to make (sender/events.py)."""

    sequence_number: int
    timestamp: int  # T3
    error_estimate: int  # describes T3 and T2
    ssid: int
    receive_timestamp: int  # T2
    sender_sequence_number: int
    sender_timestamp: int  # T1, copied
    sender_error_estimate: int
    sender_ttl: int
    tlvs: bytes = b""
    hmac: bytes = bytes(HMAC_LEN)

    def to_bytes(self, key: bytes | None = None) -> bytes:
        fields = (self.sequence_number, self.timestamp, self.error_estimate, self.ssid, self.receive_timestamp,
                  self.sender_sequence_number, self.sender_timestamp, self.sender_error_estimate, self.sender_ttl)
        if key is None:
            return REFLECTOR_OPEN.pack(*fields) + self.tlvs
        head = REFLECTOR_AUTH.pack(*fields)
        return head + hmac16(key, head) + self.tlvs

    @classmethod
    def from_bytes(cls, data: bytes, authenticated: bool = False) -> ReflectorPacket:
        """Parse a reply.  Open replies of 38..43 octets (TWAMP-Light) are padded with zeros."""
        fields, tlvs = reflector_fields(data, authenticated)
        return cls(*fields, tlvs, bytes(data[96:112]) if authenticated else bytes(HMAC_LEN))


def reflector_fields(data: bytes, authenticated: bool = False) -> tuple[tuple[int, ...], bytes]:
    """A reply's nine base fields, in :class:`ReflectorPacket`'s order, and its TLV octets: what
    a sender reads of every reply, without the object (a third of the cost of reading one).
    Open replies of 38..43 octets (TWAMP-Light) are padded with zeros."""
    size = len(data)
    if authenticated:
        if size < AUTH_BASE_LEN:
            raise MalformedPacket(f"authenticated reply needs {AUTH_BASE_LEN} octets, got {size}")
        return REFLECTOR_AUTH.unpack_from(data), bytes(data[AUTH_BASE_LEN:])
    if size < MIN_OPEN_REPLY_LEN:
        raise MalformedPacket(f"reply needs at least {MIN_OPEN_REPLY_LEN} octets, got {size}")
    if size < OPEN_BASE_LEN:
        return REFLECTOR_OPEN.unpack(bytes(data) + bytes(OPEN_BASE_LEN - size)), b""
    return REFLECTOR_OPEN.unpack_from(data), bytes(data[OPEN_BASE_LEN:]) if size > OPEN_BASE_LEN else b""
