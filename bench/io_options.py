"""Per-datagram cost of reading 32 queued datagrams with their metadata (TTL, TOS, destination
address, kernel timestamp), three ways: the standard socket module, ctypes recvmmsg with the
control messages parsed in Python, and the C extension the reflector uses.

Run: python bench/io_options.py
"""

from __future__ import annotations

import ctypes
import ctypes.util
import socket
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "src"))
from stamp_suite.net import udp  # noqa: E402

N, BUF, CTL, NAME = 32, 2048, 256, 128
IP_TTL, IP_TOS, IP_PKTINFO, SO_TIMESTAMPNS = 2, 1, 8, 35
PACKET = bytes.fromhex("00000001e93c7f00800000000001") + bytes(30)
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class msghdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32), ("msg_iov", ctypes.POINTER(iovec)),
                ("msg_iovlen", ctypes.c_size_t), ("msg_control", ctypes.c_void_p),
                ("msg_controllen", ctypes.c_size_t), ("msg_flags", ctypes.c_int)]


class mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", msghdr), ("msg_len", ctypes.c_uint)]


def parse(level_type_data):
    """The metadata from (type, data) control messages, as the reflector needs it."""
    ttl = tos = dst = kts = None
    for typ, c in level_type_data:
        if typ == IP_TTL:
            ttl = int.from_bytes(c[:4], "little")
        elif typ == IP_TOS:
            tos = c[0]
        elif typ == IP_PKTINFO:
            dst = c[8:12]
        elif typ == SO_TIMESTAMPNS:
            sec, ns = struct.unpack_from("qq", c)
            kts = sec * 10**9 + ns
    return ttl, tos, dst, kts


def socket_recvmsg(r: socket.socket):
    def read() -> int:
        n = 0
        while True:
            try:
                data, anc, flags, addr = r.recvmsg(BUF, CTL)
            except BlockingIOError:
                return n
            parse((typ, c) for _, typ, c in anc)
            n += 1
    return read


def ctypes_recvmmsg(r: socket.socket):
    bufs, ctls, names = (ctypes.c_char * (BUF * N))(), (ctypes.c_char * (CTL * N))(), (ctypes.c_char * (NAME * N))()
    iovs, msgs = (iovec * N)(), (mmsghdr * N)()
    base, cbase, nbase = ctypes.addressof(bufs), ctypes.addressof(ctls), ctypes.addressof(names)

    def read() -> int:
        for i in range(N):
            iovs[i].iov_base, iovs[i].iov_len = base + i * BUF, BUF
            h = msgs[i].msg_hdr
            h.msg_name, h.msg_namelen = nbase + i * NAME, NAME
            h.msg_iov, h.msg_iovlen = ctypes.pointer(iovs[i]), 1
            h.msg_control, h.msg_controllen, h.msg_flags = cbase + i * CTL, CTL, 0
        n = libc.recvmmsg(r.fileno(), msgs, N, socket.MSG_DONTWAIT, None)
        raw, raw_ctl, raw_names = bufs.raw, ctls.raw, names.raw
        for i in range(n):
            raw[i * BUF:i * BUF + msgs[i].msg_len]  # the datagram
            socket.inet_ntop(socket.AF_INET, raw_names[i * NAME + 4:i * NAME + 8])
            int.from_bytes(raw_names[i * NAME + 2:i * NAME + 4], "big")
            off, end, found = i * CTL, i * CTL + msgs[i].msg_hdr.msg_controllen, []
            while off + 16 <= end:
                length, _, typ = struct.unpack_from("Qii", raw_ctl, off)
                found.append((typ, raw_ctl[off + 16:off + length]))
                off += (length + 7) & ~7
            parse(found)
        return n
    return read


def c_extension(r: socket.socket):
    batch = udp._MmsgBatch(r.fileno(), N, BUF)
    return lambda: len(batch.recv())


def measure(name: str, reader, rounds: int = 3000) -> None:
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.bind(("127.0.0.1", 0))
    r.setblocking(False)
    for opt in (12, 13, IP_PKTINFO):  # IP_RECVTTL, IP_RECVTOS, IP_PKTINFO
        r.setsockopt(socket.IPPROTO_IP, opt, 1)
    r.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    read, total = reader(r), 0.0
    for _ in range(rounds):
        for _ in range(N):
            s.sendto(PACKET, r.getsockname())
        t = time.perf_counter()
        got = read()
        total += time.perf_counter() - t
        assert got == N, got
    print(f"{name:46} {total / (rounds * N) * 1e6:6.2f} us per datagram")


if __name__ == "__main__":
    measure("socket.recvmsg, one call per datagram", socket_recvmsg)
    measure("ctypes recvmmsg, cmsgs parsed in Python", ctypes_recvmmsg)
    if udp._MmsgBatch is None:
        print("C extension: not built here (no compiler at install, or not Linux)")
    else:
        measure("C extension recvmmsg (stamp_suite.net._mmsg)", c_extension)
