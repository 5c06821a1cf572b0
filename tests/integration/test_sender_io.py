"""The sender's socket paths: batched (replies by recvmmsg, a capacity window's refills by
sendmmsg, TX timestamps read many a call) and the standard socket module's, alike."""

import socket

from helpers import wait_for

from stamp_suite.api import run_session, start_reflector
from stamp_suite.net import udp


def test_capacity_mode_matches_every_reply_and_takes_t1_from_the_kernel(sender_io, monkeypatch):
    """3,000 packets, 32 in flight: each answered once, and each T1 the kernel's TX time of that
    very packet: after the clock read before its send, before the reflector received it (a
    stamp matched to the packet before or after it, in another batch, breaks one or the
    other); on one host's clock T1 <= T2 <= T3 <= T4."""
    from stamp_suite.sender.engine import SessionSender
    read_before_send, departed = {}, {}
    real_stamp, real_departed = SessionSender.stamp, SessionSender.departed

    def stamp(self, transmit, t1_ns, now_ns):
        sent = real_stamp(self, transmit, t1_ns, now_ns)
        read_before_send[sent.sequence_number] = t1_ns
        return sent

    def record_departure(self, sequence_number, tx_ns):
        departed[sequence_number] = tx_ns
        real_departed(self, sequence_number, tx_ns)
    monkeypatch.setattr(SessionSender, "stamp", stamp)
    monkeypatch.setattr(SessionSender, "departed", record_departure)
    with start_reflector() as refl:
        result = run_session(*refl.address, count=3000, window=32, timeout=2)
    packets = result.summary["packets"]
    assert (result.received, packets["lost"], packets["duplicates"], packets["foreign"]) == (3000, 0, 0, 0)
    assert len(departed) > 2900  # a stamp the kernel did not give in time leaves the clock's T1
    for s in result.samples:
        assert s.t1_ns <= s.t2_ns <= s.t3_ns <= s.t4_ns, s
        if s.sequence_number in departed:
            assert read_before_send[s.sequence_number] <= s.t1_ns == departed[s.sequence_number], s


def test_a_tx_timestamp_names_its_packet_whatever_sends_failed_before(sender_io):
    """The kernel hands each TX timestamp back with its packet: the stamp is matched by the
    packet's own Sequence Number, so a send that failed (an ICMP error said by the next send)
    cannot shift the stamps of the packets after it onto their neighbours."""
    import time
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    holder.close()  # nothing listens: the first send brings back ICMP port unreachable
    ep = udp.UdpEndpoint("127.0.0.1", 0, connect=("127.0.0.1", port))

    def packet(seq: int) -> bytes:
        return seq.to_bytes(4, "big") + bytes(40)
    try:
        assert ep.stamp_every_send()
        assert ep.batched == (sender_io == "batched")  # makes the batch buffers where there are
        ep.setblocking(False)
        before = time.time_ns()
        assert ep.send_many([packet(1)]) == 1
        stamps = []
        assert wait_for(lambda: stamps.extend(ep.read_departures(44)) or stamps, 1)
        assert [seq for seq, _ in stamps] == [1] and before <= stamps[0][1] <= time.time_ns()
        for _ in range(50):  # the refusal comes with the ICMP error, on a later send
            try:
                ep.send_many([packet(2)])
            except ConnectionRefusedError:
                break
        else:
            raise AssertionError("no send was refused")
        time.sleep(0.05)
        assert {seq for seq, _ in ep.read_departures(44)} <= {2, None}  # the packets 2 that left
        listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        listener.bind(("127.0.0.1", port))
        try:
            before = time.time_ns()
            sent = ep.send_many([packet(5), packet(6)])
            if sent == 1:  # one a call on the standard path
                sent += ep.send_many([packet(6)])
            assert sent == 2
            stamps = []
            assert wait_for(lambda: stamps.extend(ep.read_departures(44)) or len(stamps) >= 2, 1)
            assert [seq for seq, _ in stamps] == [5, 6]
            assert before <= stamps[0][1] <= stamps[1][1] <= time.time_ns()
        finally:
            listener.close()
    finally:
        ep.close()


def test_a_monitor_socket_carries_no_batch_buffers():
    """The coarse driver (a monitor's thousands of targets) reads and sends one datagram a
    call: none of its sockets makes the C extension's buffers (300 KB each), which would be
    3 GB of address space at 10,000 targets."""
    from stamp_suite.sender.driver import Probe, SenderDriver
    from stamp_suite.sender.engine import SenderConfig, SessionSender
    from stamp_suite.sender.stats import SessionStats
    with start_reflector() as refl:
        ep = udp.UdpEndpoint("127.0.0.1", 0, connect=refl.address)
        stats = SessionStats()
        driver = SenderDriver(precise=False)
        try:
            driver.add(Probe("t", SessionSender(SenderConfig(count=20, interval_ns=2_000_000, timeout_ns=10**9)),
                             ep, refl.address, [stats.on_event]))
            driver.run()
        finally:
            driver.close()
            ep.close()
    assert stats.received == 20 and ep._mmsg_buffers is None


def test_without_kernel_timestamps_replies_are_read_as_they_come():
    """--timestamping user: T4 is the clock read when a reply is read.  A sender that waits for
    its next send without reading the socket (under 3 ms apart, it used to) adds up to an
    interval to every round trip: 0.6-0.9 ms on loopback at 1 ms apart.  Now the wait reads."""
    with start_reflector() as refl:
        result = run_session(*refl.address, count=200, send_delay=2, timestamping="user", timeout=1)
    assert result.received == 200
    assert result.summary["rtt_ns"]["percentiles"]["p50"] < 1_000_000, result.summary["rtt_ns"]


def test_a_packet_larger_than_the_batch_buffers_still_has_its_stamp(sender_io):
    """A test packet of 9,300 octets (padding and every TLV) is longer than a batch buffer:
    its stamp is read by the standard path, not refused by the extension."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    ep = udp.UdpEndpoint("127.0.0.1", 0, connect=listener.getsockname())
    try:
        assert ep.stamp_every_send()
        assert ep.batched == (sender_io == "batched")
        ep.setblocking(False)
        assert ep.send_many([(77).to_bytes(4, "big") + bytes(9296)]) == 1
        stamps = []
        assert wait_for(lambda: stamps.extend(ep.read_departures(9300)) or stamps, 1)
        assert [seq for seq, _ in stamps] == [77]
    finally:
        ep.close()
        listener.close()


def test_replies_the_kernel_drops_unread_are_counted_as_this_hosts_not_the_paths(sender_io, monkeypatch):
    """A receive buffer of a few datagrams and 64 in flight: the kernel drops replies before the
    sender reads them.  They are lost (they never reached the program), and the report counts
    them as this host's (SO_MEMINFO): on loopback every loss is."""
    from stamp_suite import assembly
    with start_reflector() as refl:  # its socket keeps the usual buffer
        real = assembly.UdpEndpoint
        monkeypatch.setattr(assembly, "UdpEndpoint", lambda *a, **kw: real(*a, **{**kw, "rcvbuf": 2048}))
        result = run_session(*refl.address, count=2000, window=64, timeout=0.5)
    packets = result.summary["packets"]
    if not udp.detect_capabilities().dropped_unread:
        assert packets["dropped_unread"] is None
        return
    assert packets["lost"] > 0 and packets["dropped_unread"] == packets["lost"], packets
    assert packets["received"] + packets["lost"] == 2000


def test_a_sender_far_behind_its_schedule_reads_its_replies_between_catch_up_batches(monkeypatch):
    """200,000 packets/s asked, more than this machine sends, and a receive buffer of a few
    thousand replies: the driver reads the replies waiting after each catch-up batch, so the
    kernel drops none and nothing is lost (it used to send the whole backlog first, and the
    replies it could not hold were lost); the report says the pace it kept instead."""
    from helpers import ReflectorProcess

    from stamp_suite import assembly
    with ReflectorProcess() as refl:
        real = assembly.UdpEndpoint
        monkeypatch.setattr(assembly, "UdpEndpoint", lambda *a, **kw: real(*a, **{**kw, "rcvbuf": 1 << 20}))
        result = run_session(refl.host, refl.port, count=10_000, send_delay=0.005, timeout=2)
    packets, sending = result.summary["packets"], result.summary["sending"]
    assert (packets["lost"], packets["dropped_unread"] or 0) == (0, 0), packets
    assert sending["rate_per_s"] < 200_000 and sending["late_ns"]["max"] > 0


def test_the_driver_records_each_scheduled_sends_lateness_as_the_statistics_do():
    """The schedule error of the driver (the monitor's histogram) and Sent.late_ns are one
    figure: every scheduled send's, none for capacity mode's."""
    from stamp_suite.sender.driver import Probe, SenderDriver
    from stamp_suite.sender.engine import SenderConfig, SessionSender
    from stamp_suite.sender.events import Sent
    with start_reflector() as refl:
        for config, scheduled in ((SenderConfig(count=5, interval_ns=10_000_000, timeout_ns=10**9), 5),
                                  (SenderConfig(count=5, in_flight=2, timeout_ns=10**9), 0)):
            ep = udp.UdpEndpoint("127.0.0.1", 0, connect=refl.address)
            driver, seen, late = SenderDriver(record_schedule=True), [], []
            driver.on_schedule_error = seen.append
            driver.add(Probe("t", SessionSender(config), ep, refl.address,
                             [lambda ev: late.append(ev.late_ns) if isinstance(ev, Sent) else None]))
            driver.run()
            driver.close()
            ep.close()
            assert list(driver.schedule_error_ns) == seen == [x for x in late if x is not None]
            assert len(seen) == scheduled and len(late) == 5


def test_a_receive_buffer_cut_by_rmem_max_is_said_as_cut():
    ep = udp.UdpEndpoint("127.0.0.1", 0, rcvbuf=1 << 30)  # past any net.core.rmem_max
    small = udp.UdpEndpoint("127.0.0.1", 0, rcvbuf=64 << 10)
    try:
        assert ep.receive_buffer()[1] and ep.receive_buffer()[0] < 1 << 30
        assert small.receive_buffer() == (64 << 10, False)
    finally:
        ep.close()
        small.close()


def test_the_drop_count_is_known_from_the_start_even_without_a_reply():
    """Read when a session is added: a session that never gets a reply (so never reads its
    socket) still reports 0 rather than unknown, from its first interim report on."""
    from stamp_suite.sender.driver import Probe, SenderDriver
    from stamp_suite.sender.engine import SenderConfig, SessionSender
    from stamp_suite.sender.stats import SessionStats
    ep = udp.UdpEndpoint("127.0.0.1", 0, connect=("127.0.0.1", 9))
    stats, driver = SessionStats(), SenderDriver()
    try:
        driver.add(Probe("t", SessionSender(SenderConfig(count=1)), ep, ("127.0.0.1", 9), [stats.on_event]))
        assert stats.dropped_unread == (0 if ep.caps.dropped_unread else None)
    finally:
        driver.close()
        ep.close()
