"""UDP sockets with per-packet metadata: TTL/hop limit, TOS/traffic class, destination
address and kernel receive timestamp in; DSCP/ECN and source address per packet out; many
datagrams a system call where the optional C extension is built.

What the platform can do is detected once (:mod:`.capabilities`); a missing capability turns
the matching field into ``None`` and is reported at start-up.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
import time
from collections.abc import Sequence

from ..wire.datagram import Received
from . import options as o
from . import srv6
from .capabilities import Capabilities, detect_capabilities, enable_tx_timestamps, socket_dropped_unread, try_option
from .resolve import format_address

MMSG_API_VERSION = 3  # what this module expects of the C extension (its API_VERSION)
try:  # the optional C extension (setup.py): recvmmsg/sendmmsg, Linux
    from . import _mmsg
except ImportError:
    _mmsg = None
# One built from an older source (an editable install not rebuilt) would take other
# arguments: it is not used, and -V --verbose says so.
_STALE = _mmsg is not None and getattr(_mmsg, "API_VERSION", 1) != MMSG_API_VERSION
_MmsgBatch = None if _mmsg is None or _STALE else _mmsg.Batch
# STAMP_SUITE_BATCH_IO=off: the standard socket module even where the extension is built
# (to compare the two paths: bench/run.py, the test suite).
_BUILT = _MmsgBatch is not None
if os.environ.get("STAMP_SUITE_BATCH_IO", "").lower() in ("off", "0", "no", "false"):
    _MmsgBatch = None

_INT = struct.Struct("i")  # cmsg ints are native-endian
_TIMESPEC = struct.Struct("qq")
_IN_PKTINFO = struct.Struct("I4s4s")  # ifindex, spec_dst, addr
_IN6_PKTINFO = struct.Struct("16sI")
CMSG_SPACE = 256
RECV_BUFFER = 9216  # a jumbo frame's payload; anything larger is reported truncated
BATCH = 32  # datagrams read (and replies sent) per system call on the batched path


def batched_io() -> str:
    """Which socket path a reflector uses here, for ``-V --verbose``."""
    if _MmsgBatch is not None and o.LINUX:
        return "batched socket I/O: recvmmsg/sendmmsg (C extension)"
    if _BUILT:
        return "batched socket I/O: off (STAMP_SUITE_BATCH_IO)"
    why = ("built from an older source: rebuild it (pip install .)" if _STALE
           else "not built: no C compiler or Python headers at install" if o.LINUX else "Linux only")
    return f"batched socket I/O: no (one system call per datagram; the C extension is {why})"
_MSG_TRUNC = int(getattr(socket, "MSG_TRUNC", 0x20))  # a plain int: enum flags cost a microsecond
_new_tuple = tuple.__new__
_TX_REQUEST = struct.pack("I", o.SOF_TIMESTAMPING_TX_SOFTWARE)
_SOCK_EXTENDED_ERR = struct.Struct("IBBBBII")  # errno, origin, type, code, pad, info, data
SO_EE_ORIGIN_TIMESTAMPING = 4
_RECVERR = {(o.IPPROTO_IP, o.IP_RECVERR), (o.IPPROTO_IPV6, o.IPV6_RECVERR)}


class SocketSetupError(OSError):
    """A socket could not be opened or bound; the message is one line, fit for the operator."""


def _addr_family(host: str) -> int:
    return socket.AF_INET6 if ipaddress.ip_address(host.split("%", 1)[0]).version == 6 else socket.AF_INET


class UdpEndpoint:
    """One bound UDP socket with the receive options this platform supports switched on."""

    def __init__(self, host: str, port: int, caps: Capabilities | None = None, *, dual_stack: bool = False,
                 kernel_timestamps: bool = True, reuseport: bool = False, connect: tuple[str, int] | None = None,
                 rcvbuf: int = 4 << 20, batch: bool = True) -> None:
        self.family = _addr_family(host)
        self.receive_buffer_asked = rcvbuf
        self.dual_stack = dual_stack
        self.caps = caps if caps is not None else detect_capabilities(self.family)
        if not kernel_timestamps:
            self.caps = self.caps.without("kernel_rx_timestamp", "kernel_tx_timestamp")
        self._tx_key = 0  # OPT_ID: the kernel numbers timestamped sends from 0
        self._stamp_all = False  # the socket stamps every send (stamp_every_send)
        try:
            self.sock = socket.socket(self.family, socket.SOCK_DGRAM)
        except OSError as exc:
            raise SocketSetupError(f"cannot open a UDP socket: {exc.strerror}") from None
        s = self.sock
        try:
            if self.family == socket.AF_INET6:
                s.setsockopt(o.IPPROTO_IPV6, o.IPV6_V6ONLY, 0 if dual_stack else 1)
            if reuseport and self.caps.reuseport:
                s.setsockopt(o.SOL_SOCKET, o.SO_REUSEPORT, 1)
            try_option(s, o.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self._enable_receive_options(dual_stack)
            s.bind((host, port))
            if connect is not None:
                s.connect(connect)
        except OSError as exc:
            s.close()
            if exc.errno == errno.EADDRINUSE:
                raise SocketSetupError(f"cannot bind {format_address((host, port))}: address already in use") from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise SocketSetupError(f"cannot bind {format_address((host, port))}: permission denied "
                                       "(ports below 1024 need root or CAP_NET_BIND_SERVICE)") from None
            raise SocketSetupError(f"cannot use {format_address((host, port))}: {exc.strerror or exc}") from None
        self.local = s.getsockname()[:2]
        self._wildcard = ipaddress.ip_address(host.split("%", 1)[0]).is_unspecified
        # The batch buffers (BATCH x RECV_BUFFER octets) are made on first use: a sender's
        # socket, or a monitor's thousand, never needs them.
        self._batched = batch and _MmsgBatch is not None and o.LINUX and self.caps.recvmsg
        self._mmsg_buffers = None
        self._tos_cmsgs: dict[tuple[int, bool], tuple[int, int, bytes]] = {}
        self._source_cmsgs: dict[str | bytes, tuple[int, int, bytes]] = {}

    def _enable_receive_options(self, dual_stack: bool) -> None:
        s, c = self.sock, self.caps
        v6 = self.family == socket.AF_INET6
        if v6:
            c.ttl and try_option(s, o.IPPROTO_IPV6, o.IPV6_RECVHOPLIMIT)
            c.tos and try_option(s, o.IPPROTO_IPV6, o.IPV6_RECVTCLASS)
            c.destination_address and try_option(s, o.IPPROTO_IPV6, o.IPV6_RECVPKTINFO)
        if not v6 or dual_stack:  # IP_* options also apply to v4-mapped packets on a dual-stack socket
            c.ttl and try_option(s, o.IPPROTO_IP, o.IP_RECVTTL)
            c.tos and try_option(s, o.IPPROTO_IP, o.IP_RECVTOS)
            if c.destination_address:
                try_option(s, o.IPPROTO_IP, o.IP_PKTINFO) or try_option(s, o.IPPROTO_IP, o.IP_RECVDSTADDR)
        if c.kernel_rx_timestamp:
            try_option(s, o.SOL_SOCKET, o.SO_TIMESTAMPNS) or try_option(s, o.SOL_SOCKET, o.SO_TIMESTAMP)
        if c.kernel_tx_timestamp:
            enable_tx_timestamps(s)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)

    def dropped_unread(self) -> int | None:
        """Datagrams for this socket that the kernel dropped before they were read (its receive
        buffer was full: the program did not read fast enough), since it was opened, a 32-bit
        count; None where the platform does not say (Capabilities.dropped_unread)."""
        return socket_dropped_unread(self.sock) if self.caps.dropped_unread else None

    def receive_buffer(self) -> tuple[int, bool]:
        """The receive buffer the kernel gave this socket, in octets of what was asked (Linux
        reports and keeps twice that, for its own accounting), and whether it gave less than
        asked (net.core.rmem_max caps it)."""
        size = self.sock.getsockopt(o.SOL_SOCKET, socket.SO_RCVBUF) // (2 if o.LINUX else 1)
        return size, size < self.receive_buffer_asked

    def set_default_tos(self, tos: int) -> None:
        """DSCP/ECN for every packet of this socket (the sender's --dscp/--ecn)."""
        if self.family == socket.AF_INET6:
            try_option(self.sock, o.IPPROTO_IPV6, o.IPV6_TCLASS, tos)
        if self.family == socket.AF_INET or self.sock.getsockopt(o.IPPROTO_IPV6, o.IPV6_V6ONLY) == 0:
            try_option(self.sock, o.IPPROTO_IP, o.IP_TOS, tos)

    def recv(self, bufsize: int = RECV_BUFFER) -> Received:
        """Read one datagram (raises BlockingIOError on a non-blocking socket with none).

        A datagram larger than ``bufsize`` comes back with ``truncated`` set (MSG_TRUNC;
        on Windows the read raises EMSGSIZE instead, which the caller counts the same)."""
        if not self.caps.recvmsg:
            data, addr = self.sock.recvfrom(bufsize)
            return _new_tuple(Received, (data, addr[:2], None, None, None, None, time.time_ns(), False))
        data, anc, flags, addr = self.sock.recvmsg(bufsize, CMSG_SPACE)
        now = time.time_ns()
        ttl = tos = dst = kts = None
        for level, ctype, cdata in anc:
            kind = _CMSG_KIND.get(level << 16 | ctype)
            if kind is _TTL:
                ttl = cdata[0] if len(cdata) == 1 else _INT.unpack_from(cdata)[0]
            elif kind is _TOS:
                tos = cdata[0] if len(cdata) == 1 else _INT.unpack_from(cdata)[0] & 0xFF
            elif kind is _PKTINFO4:
                dst = cdata[8:12]  # ipi_addr: the header's destination address
            elif kind is _DSTADDR4:
                dst = cdata[:4]
            elif kind is _PKTINFO6:
                dst = cdata[:16]
            elif kind is _TSNS:
                sec, nsec = _TIMESPEC.unpack_from(cdata)
                kts = sec * 1_000_000_000 + nsec
            elif kind is _TSUS:  # struct timeval: microseconds
                sec, usec = struct.unpack_from("qq" if len(cdata) >= 16 else "qi", cdata)
                kts = sec * 1_000_000_000 + usec * 1000
        # tuple.__new__ is what Received() calls, less a Python frame: a third of its cost.
        return _new_tuple(Received, (data, addr[:2], ttl, tos, dst, kts, now, bool(flags & _MSG_TRUNC)))

    @property
    def io_path(self) -> str:
        """How this socket reads and answers, for a banner (without making the batch buffers)."""
        return "batched socket I/O" if self._batched else "socket I/O one system call per datagram"

    @property
    def batched(self) -> bool:
        """Replies go out together (sendmmsg) rather than one system call each."""
        return self._mmsg is not None

    @property
    def _mmsg(self):
        if self._mmsg_buffers is None and self._batched:
            self._mmsg_buffers = _MmsgBatch(self.sock.fileno(), BATCH, RECV_BUFFER)
        return self._mmsg_buffers

    def recv_batch(self) -> list[tuple]:
        """The datagrams waiting, up to :data:`BATCH` (BlockingIOError when none), each laid out
        as :class:`Received`: one recvmmsg call on the batched path (plain tuples), one
        recvmsg per datagram otherwise."""
        if self._mmsg is not None:
            return self._mmsg.recv()
        out: list[tuple] = []
        while len(out) < BATCH:
            try:
                out.append(self.recv())
            except OSError:
                if out:  # said by the next call
                    return out
                raise
        return out

    def send_batch(self, replies: Sequence[tuple]) -> list[tuple[int, OSError]]:
        """Send replies, tuples that begin ``(data, destination, source_address, tos)`` (the
        reflector's Reply is one), as :meth:`send` would each: one sendmmsg call on the batched
        path.  Returns the ones the kernel refused, as (index, error), the others left."""
        failed: list[tuple[int, OSError]] = []
        if self._mmsg is None:
            for i in range(len(replies)):
                self._send_one(replies, i, failed)
            return failed
        pin = self._wildcard and self.caps.set_source_per_packet
        per_tos = self.caps.set_tos_per_packet
        i = 0
        while i < len(replies):
            try:
                sent = self._mmsg.send(self.family, replies[i:i + BATCH], pin, per_tos)
            except OSError:
                sent = 0
            if sent:
                i += sent
                continue
            # replies[i] stopped the batch (the kernel refused it, or it cannot go from this
            # socket): sent alone, which says why.
            self._send_one(replies, i, failed)
            i += 1
        return failed

    def _send_one(self, replies: Sequence[tuple], i: int, failed: list[tuple[int, OSError]]) -> None:
        try:
            data, destination, source, tos = replies[i][:4]
            self._send(data, destination, source, tos, False)
        except OSError as exc:
            failed.append((i, exc))
        except ValueError as exc:  # an address of the other family
            failed.append((i, OSError(errno.EAFNOSUPPORT, str(exc))))
        except (TypeError, OverflowError, struct.error) as exc:  # not a reply (a NUL in a host, port 2^70)
            failed.append((i, OSError(errno.EINVAL, str(exc))))

    @property
    def srv6_unavailable(self) -> str | None:
        """Why this socket cannot send a reply with a Segment Routing Header (an RFC 9503
        SRv6 Return Path); None when it can."""
        if self.family != socket.AF_INET6:
            return "the reflector's socket is IPv4 only"
        return srv6.probe()

    def send(self, data: bytes | bytearray, destination: tuple[str, int] | None,
             source_address: str | bytes | None = None, tos: int | None = None,
             tx_timestamp: bool = False, routing_header: bytes | None = None) -> int | None:
        """Send, optionally from a given local address and with a given TOS/traffic class.

        The source address is pinned only on a wildcard-bound socket (a bound address is
        already the source); the ancillary data is built once per address and TOS value.
        With ``tx_timestamp`` the kernel is asked for the software transmit time; the key
        returned comes back with it from :meth:`read_tx_timestamps`.  A ``routing_header``
        (an SRH) is on the socket for this one send only (see :mod:`.srv6`).
        """
        if routing_header is None:
            return self._send(data, destination, source_address, tos, tx_timestamp)
        self.sock.setsockopt(o.IPPROTO_IPV6, srv6.IPV6_RTHDR, routing_header)
        try:
            return self._send(data, destination, source_address, tos, tx_timestamp)
        finally:
            self.sock.setsockopt(o.IPPROTO_IPV6, srv6.IPV6_RTHDR, b"")

    def _send(self, data: bytes | bytearray, destination: tuple[str, int] | None, source_address: str | bytes | None,
              tos: int | None, tx_timestamp: bool) -> int | None:
        anc = []
        key = None
        if tx_timestamp and self.caps.kernel_tx_timestamp and not self._stamp_all:
            anc.append((o.SOL_SOCKET, o.SO_TIMESTAMPING, _TX_REQUEST))
            key = self._tx_key
            self._tx_key = (self._tx_key + 1) & 0xFFFF_FFFF
        if tos is not None and self.caps.set_tos_per_packet:
            v6_dest = self.family == socket.AF_INET6 and not _is_v4_mapped(destination[0] if destination else None)
            tos_key = (tos, v6_dest)
            cm = self._tos_cmsgs.get(tos_key)
            if cm is None:
                cm = self._tos_cmsgs[tos_key] = ((o.IPPROTO_IPV6, o.IPV6_TCLASS, _INT.pack(tos)) if v6_dest
                                             else (o.IPPROTO_IP, o.IP_TOS, _INT.pack(tos)))
            anc.append(cm)
        if source_address and self._wildcard and self.caps.set_source_per_packet:
            cm = self._source_cmsgs.get(source_address)
            if cm is None:
                if len(self._source_cmsgs) > 1024:
                    self._source_cmsgs.clear()
                cm = self._source_cmsgs[source_address] = _source_cmsg(self.family, source_address)
            anc.append(cm)
        if anc:
            self.sock.sendmsg([data], anc, 0, destination) if destination else self.sock.sendmsg([data], anc)
        elif destination is None:
            self.sock.send(data)
        else:
            self.sock.sendto(data, destination)
        return key

    def stamp_every_send(self) -> bool:
        """Ask the kernel for the TX timestamp of every send on this socket (a Session-Sender's,
        which sends only test packets), each handed back with its packet (no OPT_TSONLY), so
        that a stamp names its packet by Sequence Number (:meth:`read_departures`).  No control
        message a send: sends can go many a system call (:meth:`send_many`).  False when the
        platform gives none."""
        if self.caps.kernel_tx_timestamp and not self._stamp_all:
            flags = o.SOF_TIMESTAMPING_SOFTWARE | o.SOF_TIMESTAMPING_TX_SOFTWARE
            for f in (flags | o.SOF_TIMESTAMPING_OPT_RX_FILTER, flags):  # RX_FILTER: see enable_tx_timestamps
                if try_option(self.sock, o.SOL_SOCKET, o.SO_TIMESTAMPING, f):
                    self._stamp_all = True
                    break
        return self._stamp_all

    def send_many(self, datas: Sequence[bytes | bytearray]) -> int:
        """Send test packets on this connected socket, as many a system call as the C extension
        takes (sendmmsg, once :meth:`recv_batch` or :attr:`batched` made its buffers); how many
        left, in order.  Fewer than given: the kernel stopped the batch at the next one, which
        did not leave (its error is not said: the caller sends it again).  OSError when not
        one left."""
        batch = self._mmsg_buffers
        if batch is None or len(datas) == 1:
            self._send(datas[0], None, None, None, False)
            return 1
        return batch.send_connected(datas[:BATCH])

    def read_departures(self, payload_len: int) -> list[tuple[int | None, int | None]]:
        """The error queue's messages (stamp_every_send), as (Sequence Number, POSIX ns) for the
        TX timestamp of a test packet of ``payload_len`` octets (the payload of the UDP datagram
        the kernel hands back with it), (None, None) for any other.  What the error queue gives
        cannot fail a send: a read error ends the reading, and the packets not read keep the
        T1 read before their send."""
        out: list[tuple[int | None, int | None]] = []
        if not self._stamp_all:
            return out
        batch = self._mmsg_buffers
        try:
            if batch is not None and payload_len + 128 <= RECV_BUFFER:  # headers and all fit its buffers
                while True:
                    read = batch.departures(payload_len)
                    out += read
                    if len(read) < BATCH:
                        return out
            while True:
                data, anc, flags, _ = self.sock.recvmsg(payload_len + 256, 512, _ERRQUEUE_FLAGS)
                ts = None
                stamped = False
                for level, ctype, cdata in anc:
                    if level == o.SOL_SOCKET and ctype == o.SO_TIMESTAMPING:
                        sec, nsec = _TIMESPEC.unpack_from(cdata)  # [0] is the software stamp
                        ts = sec * 1_000_000_000 + nsec
                    elif (level, ctype) in _RECVERR and len(cdata) >= _SOCK_EXTENDED_ERR.size:
                        stamped = _SOCK_EXTENDED_ERR.unpack_from(cdata)[1] == SO_EE_ORIGIN_TIMESTAMPING
                start = len(data) - payload_len  # the payload, after a UDP header giving its length
                if (stamped and ts and not flags & _MSG_TRUNC and start >= 8
                        and int.from_bytes(data[start - 4:start - 2], "big") == payload_len + 8):
                    out.append((int.from_bytes(data[start:start + 4], "big"), ts))
                else:
                    out.append((None, None))
        except (BlockingIOError, InterruptedError):
            return out
        except OSError:
            return out

    def read_tx_timestamps(self, limit: int = 1 << 30) -> list[tuple[int, int]]:
        """Drain the error queue: (key, kernel software transmit time in POSIX ns) pairs; at
        most ``limit`` of them (the stamps awaited: no read that would find nothing)."""
        out: list[tuple[int, int]] = []
        if not self.caps.kernel_tx_timestamp:
            return out
        while len(out) < limit:
            try:
                _, anc, _, _ = self.sock.recvmsg(64, 512, _ERRQUEUE_FLAGS)
            except (BlockingIOError, InterruptedError):
                return out
            except OSError:
                return out
            ts = key = None
            for level, ctype, cdata in anc:
                if level == o.SOL_SOCKET and ctype == o.SO_TIMESTAMPING:
                    sec, nsec = _TIMESPEC.unpack_from(cdata)  # [0] is the software stamp
                    ts = sec * 1_000_000_000 + nsec
                elif len(cdata) >= _SOCK_EXTENDED_ERR.size:
                    _, origin, _, _, _, _, data = _SOCK_EXTENDED_ERR.unpack_from(cdata)
                    if origin == SO_EE_ORIGIN_TIMESTAMPING:
                        key = data
            if ts is not None and key is not None:
                out.append((key, ts))
        return out


# an int, not socket's enum: no enum arithmetic per read (and Windows has no MSG_DONTWAIT)
_ERRQUEUE_FLAGS = int((o.MSG_ERRQUEUE or 0) | getattr(socket, "MSG_DONTWAIT", 0))
_TTL, _TOS, _PKTINFO4, _DSTADDR4, _PKTINFO6, _TSNS, _TSUS = (object() for _ in range(7))
_CMSG_KIND = {level << 16 | ctype: v for (level, ctype), v in {
    (o.IPPROTO_IP, o.IP_TTL): _TTL, (o.IPPROTO_IP, o.IP_RECVTTL): _TTL, (o.IPPROTO_IPV6, o.IPV6_HOPLIMIT): _TTL,
    (o.IPPROTO_IP, o.IP_TOS): _TOS, (o.IPPROTO_IP, o.IP_RECVTOS): _TOS, (o.IPPROTO_IPV6, o.IPV6_TCLASS): _TOS,
    (o.IPPROTO_IP, o.IP_PKTINFO): _PKTINFO4, (o.IPPROTO_IP, o.IP_RECVDSTADDR): _DSTADDR4,
    (o.IPPROTO_IPV6, o.IPV6_PKTINFO): _PKTINFO6,
    (o.SOL_SOCKET, o.SO_TIMESTAMPNS): _TSNS, (o.SOL_SOCKET, o.SO_TIMESTAMP): _TSUS,
}.items() if ctype is not None}


def _is_v4_mapped(host: str | None) -> bool:
    return bool(host) and host.lower().startswith("::ffff:") and "." in host


def _source_cmsg(family: int, source: str | bytes) -> tuple[int, int, bytes]:
    ip = ipaddress.ip_address(source if isinstance(source, bytes) else source.split("%", 1)[0])
    if family == socket.AF_INET6:
        if ip.version == 4:
            ip = ipaddress.IPv6Address(f"::ffff:{ip}")
        return (o.IPPROTO_IPV6, o.IPV6_PKTINFO, _IN6_PKTINFO.pack(ip.packed, 0))
    if ip.version == 6:  # packing it into in_pktinfo would pin its first four octets
        raise ValueError(f"an IPv6 source address ({ip}) on an IPv4 socket")
    return (o.IPPROTO_IP, o.IP_PKTINFO, _IN_PKTINFO.pack(0, ip.packed, bytes(4)))
