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


def test_after_a_failed_send_tx_timestamp_keys_start_again_on_both_sides():
    """Whether the kernel used up a key for a send that failed is not said: the numbering
    restarts (the option off and on), and the next packet's stamp comes back under key 0."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    holder.close()  # nothing listens: the first send brings back ICMP port unreachable
    ep = udp.UdpEndpoint("127.0.0.1", 0, connect=("127.0.0.1", port))
    try:
        assert ep.stamp_every_send()
        ep.setblocking(False)
        assert ep.send_many([b"a" * 44]) == [0]
        assert wait_for(lambda: ep.read_tx_timestamps() != [], 1)
        failed = False
        for _ in range(50):  # the refusal comes with the ICMP error, on a later send
            try:
                ep.send_many([b"b" * 44])
            except ConnectionRefusedError:
                failed = True
                break
        assert failed
        ep.restart_tx_keys()
        listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        listener.bind(("127.0.0.1", port))
        try:
            assert ep.send_many([b"c" * 44, b"d" * 44]) == [0, 1]
            stamps = []
            assert wait_for(lambda: stamps.extend(ep.read_tx_timestamps()) or len(stamps) >= 2, 1)
            assert [key for key, _ in stamps] == [0, 1]
        finally:
            listener.close()
    finally:
        ep.close()
