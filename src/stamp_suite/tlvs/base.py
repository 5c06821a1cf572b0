"""What every TLV type knows, in one place per type (one module each in this package):

- its wire layout: ``from_value`` / ``to_value`` (RFC 8972 §4 header handling is in
  :mod:`stamp_suite.wire.tlv`);
- how a Session-Reflector processes it: ``reflect(tlv, ctx)``, returning the reply's flags
  and Value (same Length), and taking routing decisions through :class:`ReflectContext`;
- how a Session-Sender reads the reflector's answer: ``read(ctx)``, recording what it
  learned in :class:`ReadContext`.

A subclass with a ``TYPE`` registers itself; the engines walk :data:`REGISTRY`, so adding a
TLV touches its own module and ``__init__`` only.  Nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from ..wire.timestamp import TimestampFormat
from ..wire.tlv import FLAG_U, MalformedTlv, RawTlv

PROCESSED = 0  # the reply's flags for a TLV processed without trouble: U = M = I = 0
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TlvDiscard(StrEnum):
    """A TLV whose rule says the packet gets no reply (each a drop reason of the reflector)."""

    MICRO_SESSION_MISMATCH = "micro_session_mismatch"  # micro_session.py, RFC 9534 §3.2
    RETURN_PATH_NO_REPLY = "return_path_no_reply"  # return_path.py, RFC 9503 §4.1.1 Control Code 0


# What a reflector rule reads of the engine: read-only views, which the engine's own
# configuration, clock description, packet metadata and session satisfy.

class HostAddresses(Protocol):
    """This host's addresses, as the reflector knows them (the socket layer asks the system)."""

    def is_local(self, ip: Address) -> bool:
        """One of this host's addresses, loopback and broadcast ones included: a datagram
        sent there reaches this host."""

    def is_broadcast(self, ip: Address) -> bool:
        """A broadcast address of one of this host's networks."""


class ReflectorSettings(Protocol):
    @property
    def stateful(self) -> bool: ...
    @property
    def timestamp_format(self) -> TimestampFormat: ...
    @property
    def cos_allowed_dscp(self) -> frozenset[int] | None: ...
    @property
    def member_link_id(self) -> int | None: ...
    @property
    def return_address_allow(self) -> tuple[Network, ...]: ...
    @property
    def return_srv6_allow(self) -> tuple[ipaddress.IPv6Network, ...]: ...
    @property
    def srv6_unavailable(self) -> str | None: ...
    @property
    def host(self) -> HostAddresses: ...


class ClockView(Protocol):
    @property
    def sync_source(self) -> int: ...
    @property
    def tai_offset_s(self) -> int: ...


class PacketView(Protocol):
    @property
    def source(self) -> tuple[str, int]: ...
    @property
    def local_address(self) -> str | bytes | None: ...
    @property
    def local_port(self) -> int: ...
    @property
    def tos(self) -> int | None: ...
    @property
    def rx_method(self) -> int: ...


class SessionView(Protocol):
    @property
    def received(self) -> int: ...
    @property
    def transmitted(self) -> int: ...
    @property
    def last_reply_sequence(self) -> int | None: ...
    @property
    def last_reply_tx_ns(self) -> int | None: ...
    @property
    def last_reply_tx_method(self) -> int: ...


class TlvValue:
    """Base of the typed TLV Values: one subclass per Type, registered by ``TYPE``."""

    TYPE: ClassVar[int]
    KEY: ClassVar[str] = ""  # the name of what a sender reads of it (JSON, per-packet lines); "": nothing

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "TYPE" in cls.__dict__:
            REGISTRY[cls.TYPE] = cls

    @classmethod
    def from_value(cls, value: bytes) -> TlvValue:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_value(self) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_tlv(self, flags: int = FLAG_U) -> RawTlv:
        """The sender MUST set U on every TLV it sends (RFC 8972 §4)."""
        return RawTlv.build(self.TYPE, self.to_value(), flags)

    @classmethod
    def reflect(cls, tlv: RawTlv, ctx: ReflectContext) -> tuple[int, bytes]:
        """The reflector's answer: flags and a Value of the received Length.  Raise
        :class:`MalformedTlv` for a Value that cannot be accepted.  By default a type is
        recognised but not processed (U = 1, the Value returned as received)."""
        return FLAG_U, tlv.value

    @classmethod
    def malformed_value(cls, value: bytes) -> bytes:
        """The Value a reflector returns in a TLV of this type that it found malformed (M = 1):
        as received, unless the type's RFC says what to zero (same length)."""
        return value

    def read(self, ctx: ReadContext) -> None:
        """A sender reads the reflector's answer: by default it keeps the typed value (a type
        with a KEY), in ``ctx.read``; a type may check it first (Micro-session ID)."""
        if self.KEY:
            ctx.read[type(self)] = self

    def record(self) -> dict[str, Any]:
        """What a sender read of it, as plain values for JSON and per-packet lines (the edge)."""
        raise NotImplementedError  # pragma: no cover - every type with a KEY has one


REGISTRY: dict[int, type[TlvValue]] = {}


def decode(tlv: RawTlv) -> TlvValue | None:
    """The typed Value of a TLV, or None for an unknown Type.  Raises :class:`MalformedTlv`."""
    if tlv.truncated:
        raise MalformedTlv(f"TLV type {tlv.type} Length {tlv.length} runs past the end of the packet")
    cls = REGISTRY.get(tlv.type)
    return None if cls is None else cls.from_value(tlv.value)


@dataclass(slots=True)
class ReflectContext:
    """What a reflector rule may read, and the decisions it may take for the reply."""

    config: ReflectorSettings
    clock: ClockView
    meta: PacketView
    session: SessionView
    authenticated_packet: bool
    # decisions
    source_address: str | bytes | None = None
    destination: tuple[str, int] | None = None
    tos: int | None = None
    discard_reason: TlvDiscard | None = None
    return_path_seen: bool = False
    return_path_outcomes: list[str] = field(default_factory=list)  # counted by the engine
    routing_header: bytes | None = None  # an SRH the reply must carry (RFC 9503 SRv6 Segment List)
    follow_up_requested: bool = False
    work: int = 0  # TLVs and sub-TLVs looked at: what the packet costs (see Reflector)
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ReadContext:
    """What a sender reading may use, and what it learned (the engine acts on the latter)."""

    timestamp_format: TimestampFormat  # of this reply (its Error Estimate's Z bit)
    tai_offset_s: int
    pivot_ns: int  # a time near the reply's, to place NTP/PTP timestamps in their era
    micro_session: Any = None  # the MicroSessionId the sender sent, if any
    learned_reflector_link_id: int | None = None
    read: dict[type[TlvValue], TlvValue] = field(default_factory=dict)  # what was read, by type
    access_report_answered: bool = False
    mismatch: str | None = None  # a reason to discard the reply (RFC 9534 §3.2)


def unmapped_address(addr: str | bytes | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address as the peer sees it: v4-mapped IPv6 (dual-stack sockets) becomes IPv4."""
    if not addr:
        return None
    ip = ipaddress.ip_address(addr if isinstance(addr, bytes) else addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
