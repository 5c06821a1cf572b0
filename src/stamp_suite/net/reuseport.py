"""One UDP port, several reflector workers, one owner.

How a reflector takes its port (Linux):

1. The first socket binds *without* SO_REUSEPORT.  That bind fails if any socket on the
   host holds the port, with or without SO_REUSEPORT, so a second reflector on a held
   port exits with one line instead of silently joining the first one's group.
2. SO_REUSEPORT is then switched on for that bound socket, and the other workers' sockets
   bind with it: they join the group the first socket now heads.  All of them are opened
   here, in the parent, before any worker is forked; each worker keeps only its own.
3. A classic-BPF program on the group picks the socket by the packet's *source address*
   (an IPv4 address, or an IPv6 /64, ``mod N``), never by port: every packet of one sender
   host meets the same worker, so per-address limits (--max-pps) and per-session state are
   exact, and a socket that joins the group later (index N or more) is never chosen.

Hand-written BPF because no library does this for Python: eleven instructions, loaded
with setsockopt(SO_ATTACH_REUSEPORT_CBPF) and needing no privilege.
"""

from __future__ import annotations

import ctypes
import socket
from collections.abc import Callable

from . import options as o
from .udp import SocketSetupError, UdpEndpoint

SO_ATTACH_REUSEPORT_CBPF = 51
SKF_NET_OFF = -0x100000  # classic BPF: offsets from the network header (the data starts at the UDP payload)
# Instruction classes and modes (linux/filter.h)
_LD_B_ABS, _LD_W_ABS = 0x30, 0x20
_ALU_RSH_K, _ALU_MOD_K, _ALU_XOR_X = 0x74, 0x94, 0xAC
_JEQ_K, _JA = 0x15, 0x05
_TAX, _RET_A = 0x07, 0x16


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def source_address_program(workers: int) -> list[tuple[int, int, int, int]]:
    """``return client % workers``: the client is the IPv4 source address, or the /64 of an
    IPv6 one (its first two words folded by XOR), as the rate limiter counts them."""
    k = lambda off: (SKF_NET_OFF + off) & 0xFFFF_FFFF  # noqa: E731
    return [
        (_LD_B_ABS, 0, 0, k(0)),  # 0: A = first octet of the IP header
        (_ALU_RSH_K, 0, 0, 4),  # 1: A = IP version
        (_JEQ_K, 0, 2, 4),  # 2: IPv4? to 3, else to 5
        (_LD_W_ABS, 0, 0, k(12)),  # 3: A = IPv4 source address
        (_JA, 0, 0, 3),  # 4: to 8
        (_LD_W_ABS, 0, 0, k(8)),  # 5: IPv6 source address, word 0
        (_TAX, 0, 0, 0),  # 6
        (_LD_W_ABS, 0, 0, k(12)),  # 7: word 1 (then XOR below: A ^= X)
        (_ALU_XOR_X, 0, 0, 0),  # 8: for IPv4 X is 0, so A stays the address
        (_ALU_MOD_K, 0, 0, workers),  # 9
        (_RET_A, 0, 0, 0),  # 10: the index of the socket in the group
    ]


def steer_by_source_address(sock: socket.socket, workers: int) -> None:
    """Attach the steering program to ``sock``'s reuseport group (raises OSError if refused)."""
    program = source_address_program(workers)
    insns = (_SockFilter * len(program))(*(_SockFilter(*i) for i in program))
    fprog = _SockFprog(len(program), ctypes.cast(insns, ctypes.POINTER(_SockFilter)))
    sock.setsockopt(o.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, bytes(fprog))  # insns stay alive until it returns


def open_port_group(open_endpoint: Callable[[int, bool], UdpEndpoint], port: int,
                    workers: int) -> tuple[list[UdpEndpoint], str | None]:
    """``workers`` sockets on one port, steered by source address.

    ``open_endpoint(port, reuseport)`` opens one bound socket.  Returns the endpoints and,
    when only one could be had, why (said once by the caller); a held port raises
    :class:`SocketSetupError` from the first bind."""
    first = open_endpoint(port, False)  # the probe: fails if anything holds the port
    if workers == 1:
        return [first], None
    if not (o.LINUX and o.SO_REUSEPORT is not None):
        return [first], "several workers need Linux (SO_REUSEPORT with BPF steering): running one worker"
    group = [first]
    try:
        first.sock.setsockopt(o.SOL_SOCKET, o.SO_REUSEPORT, 1)
        for _ in range(workers - 1):
            group.append(open_endpoint(first.local[1], True))
        steer_by_source_address(first.sock, workers)
    except (OSError, SocketSetupError) as exc:
        for ep in group[1:]:
            ep.close()
        first.sock.setsockopt(o.SOL_SOCKET, o.SO_REUSEPORT, 0)  # nobody joins a group of one
        reason = getattr(exc, "strerror", None) or str(exc)
        return [first], f"cannot steer packets to {workers} workers by source address ({reason}): running one worker"
    return group, None
