"""Per-datagram cost of reading 32 queued datagrams with their metadata (TTL, TOS, destination
address, kernel timestamp), three ways: the standard socket module, ctypes recvmmsg with the
control messages parsed in Python, and the C extension.  Run: python bench/io_options.py"""
import ctypes, ctypes.util, socket, struct, time, sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "src"))
from stamp_suite.net import udp
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

class iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32), ("msg_iov", ctypes.POINTER(iovec)),
                ("msg_iovlen", ctypes.c_size_t), ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]
class mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", msghdr), ("msg_len", ctypes.c_uint)]
N, BUF, CTL = 32, 2048, 256

def setup():
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(("127.0.0.1", 0)); r.setblocking(False)
    for opt in (12, 13, 8): r.setsockopt(0, opt, 1)
    r.setsockopt(1, 35, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return r, s

pkt = bytes.fromhex("00000001e93c7f00800000000001") + bytes(30)
def fill(s, port):
    for _ in range(N): s.sendto(pkt, ("127.0.0.1", port))

def bench(name, reader, rounds=3000):
    r, s = setup(); port = r.getsockname()[1]
    rd = reader(r)
    total = 0.0
    for _ in range(rounds):
        fill(s, port)
        time.sleep(0)
        t = time.perf_counter(); got = rd(); total += time.perf_counter() - t
        assert got == N, got
    print(f"{name:40} {total / (rounds * N) * 1e6:6.2f} us per datagram")

def py_recvmsg(r):
    def rd():
        n = 0
        while True:
            try:
                d, anc, fl, a = r.recvmsg(BUF, CTL)
            except BlockingIOError:
                return n
            ttl = tos = dst = kts = None
            for lvl, typ, c in anc:
                if typ == 2: ttl = c[0] if len(c) == 1 else int.from_bytes(c[:4], "little")
                elif typ == 1: tos = c[0]
                elif typ == 8: dst = c[8:12]
                elif typ == 35: sec, ns = struct.unpack_from("qq", c); kts = sec * 10**9 + ns
            n += 1
    return rd

def ctypes_recvmmsg(r):
    bufs = (ctypes.c_char * (BUF * N))(); ctls = (ctypes.c_char * (CTL * N))(); names = (ctypes.c_char * (128 * N))()
    iovs = (iovec * N)(); msgs = (mmsghdr * N)()
    base = ctypes.addressof(bufs); cbase = ctypes.addressof(ctls); nbase = ctypes.addressof(names)
    fd = r.fileno()
    def rd():
        for i in range(N):
            iovs[i].iov_base = base + i * BUF; iovs[i].iov_len = BUF
            h = msgs[i].msg_hdr
            h.msg_name = nbase + i * 128; h.msg_namelen = 128; h.msg_iov = ctypes.pointer(iovs[i]); h.msg_iovlen = 1
            h.msg_control = cbase + i * CTL; h.msg_controllen = CTL; h.msg_flags = 0
        n = libc.recvmmsg(fd, msgs, N, 0x40, None)
        raw_ctl = ctls.raw; raw_names = names.raw; raw = bufs.raw
        for i in range(n):
            data = raw[i * BUF: i * BUF + msgs[i].msg_len]
            port = int.from_bytes(raw_names[i * 128 + 2: i * 128 + 4], "big")
            addr = socket.inet_ntop(socket.AF_INET, raw_names[i * 128 + 4: i * 128 + 8])
            clen = msgs[i].msg_hdr.msg_controllen; off = i * CTL; end = off + clen
            ttl = tos = dst = kts = None
            while off + 16 <= end:
                ln, lvl, typ = struct.unpack_from("Qii", raw_ctl, off)
                c = raw_ctl[off + 16: off + ln]
                if typ == 2: ttl = int.from_bytes(c[:4], "little")
                elif typ == 1: tos = c[0]
                elif typ == 8: dst = c[8:12]
                elif typ == 35: sec, ns = struct.unpack_from("qq", c); kts = sec * 10**9 + ns
                off += (ln + 7) & ~7
        return n
    return rd

def c_extension(r):
    b = udp._MmsgBatch(r.fileno(), N, BUF)
    return lambda: len(b.recv())

for name, f in (("socket.recvmsg, one call per datagram", py_recvmsg), ("ctypes recvmmsg, cmsgs parsed in Python", ctypes_recvmmsg),
                ("C extension recvmmsg (stamp_suite.net._mmsg)", c_extension)):
    bench(name, f)
