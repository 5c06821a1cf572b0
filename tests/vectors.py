"""Shared test data, and how a test hands a datagram to the reflector engine.

The worked examples (a) to (e) are packets computed from the RFC 8762 and RFC 8972 layouts
with Python's struct and hmac alone, independently of this package, in the STAMP reference
digest the project was started from (its §6; "the digest" in the tests): bytes no encoder of
ours made."""

from dataclasses import dataclass

from stamp_suite.reflector.engine import Reflection
from stamp_suite.sender.events import Sample
from stamp_suite.wire.datagram import Received

NS = 1_000_000_000
# 2024-01-01T00:00:00 UTC in POSIX ns, and the example instants T1, T2, T3.
BASE_NS = 1_704_067_200 * NS
T1_NS = BASE_NS + 500_000_000
T2_NS = BASE_NS + 750_000_000
T3_NS = BASE_NS + 750_250_000
KEY = bytes.fromhex("00112233445566778899aabbccddeeff")

# (a) open Session-Sender packet, seq 1, EE 0x8001
EX_A = bytes.fromhex("00000001e93c7f00800000008001000000000000000000000000000000000000000000000000000000000000")
# (b) stateless reflector reply to (a), TTL 64
EX_B = bytes.fromhex("00000001e93c7f00c010624d80010000e93c7f00c000000000000001e93c7f00800000008001000040000000")
# (c) authenticated Session-Sender packet, seq 1
EX_C = bytes.fromhex(
    "00000001000000000000000000000000"
    "e93c7f00800000008001000000000000"
    + "00" * 64
    + "874a801fc3dafaa345256e5cf1a7db68")
# (c2) authenticated reflector reply to (c), stateless, TTL 64
EX_C2 = bytes.fromhex(
    "00000001000000000000000000000000"
    "e93c7f00c010624d8001000000000000"
    "e93c7f00c00000000000000000000000"
    "00000001000000000000000000000000"
    "e93c7f00800000008001000000000000"
    "40000000000000000000000000000000"
    "2b42cf41f3d1d4f97d4810ecbe61402d")
# (d) open sender, SSID 0x1234, Class of Service TLV with DSCP1 = 46
EX_D = bytes.fromhex("00000001e93c7f0080000000800112340000000000000000000000000000000000000000"
                     "000000000000000080040004b8000000")
# (e) = (c) + CoS TLV + HMAC TLV
EX_E = EX_C + bytes.fromhex("80040004b8000000" "80080010" "3c36cb8a8947826f94ed27b13575b18c")




@dataclass(frozen=True)
class At:
    """How a test datagram arrives: what the socket layer would say of it (a ``Received``)."""

    source: tuple[str, int] = ("127.0.0.1", 40000)
    destination: str | bytes | None = "127.0.0.1"
    ttl: int | None = 64
    tos: int | None = 0
    kernel_ns: int | None = T2_NS  # None: no kernel timestamp, T2 read in user space

    def __call__(self, data: bytes) -> Received:
        return Received(data, self.source, self.ttl, self.tos, self.destination, self.kernel_ns,
                        T2_NS if self.kernel_ns is None else self.kernel_ns)


def answer(reflector, data: bytes, at: At = At(), now: int = T3_NS):
    """The reflector's reply to ``data`` arriving ``at``, stamped with T3 = ``now``: (bytes, the
    Reflection), or (None, the drop reason)."""
    out = reflector.reflect(at(data), now)
    if not isinstance(out, Reflection):
        return None, out
    reflector.stamp((out,), now)
    return bytes(out.data), out


# A sender's reply for the statistics and metrics tests: sent at T1 (2023-11-14 UTC).
T1 = 1_700_000_000 * NS


def sample(seq: int, rtt_us: int, tos: int | None = 0xB8) -> Sample:
    """A reply whose round trip is ``rtt_us`` (no residence time): T2 = T3 at half way."""
    half = rtt_us * 500
    return Sample(seq, seq, T1, T1 + half, T1 + half, T1 + 2 * half, 61, 58, tos, True, True, 0.0, 0.0, 0)
