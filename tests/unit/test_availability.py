"""Errored seconds, RFC 3357 loss periods and outages from packet fates (sender/availability.py),
with fates arriving as the engine gives them: a loss only at its timeout, after later replies."""

from vectors import T1_NS

from stamp_suite.sender.availability import NS, Availability
from stamp_suite.sender.events import Duplicate, Invalid, Lost, Reply, Sample

MS = 1_000_000


def reply(seq: int, t1: int, rtt_ms: float = 1.0) -> Reply:
    half = int(rtt_ms * MS / 2)
    return Reply(Sample(seq, seq, t1, t1 + half, t1 + half, t1 + 2 * half, 64, 64, 0, True, True, 0.0, 0.0, 0))


def run(fates: list[str], interval_ms: int = 100, timeout_packets: int = 20, **kw) -> Availability:
    """Packets every ``interval_ms`` from a whole second: "." answered, "x" lost, "s" slow
    (50 ms), "i" invalid; a loss is said ``timeout_packets`` sends later, as the engine's
    timeout does, so the later replies come first."""
    av = Availability(interval_ns=interval_ms * MS, **kw)
    t0 = (T1_NS // NS + 1) * NS
    pending: list[tuple[int, Lost]] = []
    for seq, fate in enumerate(fates):
        t1 = t0 + seq * interval_ms * MS
        while pending and pending[0][0] <= seq:
            av.on_event(pending.pop(0)[1])
        if fate == "x":
            pending.append((seq + timeout_packets, Lost(seq, t1)))
        elif fate == "i":
            av.on_event(Invalid(reply(seq, t1).sample, "T3 before T2"))
        else:
            ev = reply(seq, t1, 50.0 if fate == "s" else 1.0)
            av.on_event(ev)
            av.on_event(Duplicate(ev.sample))  # a second copy changes nothing
    for _, ev in pending:
        av.on_event(ev)
    return av


def test_a_five_second_outage_is_one_outage_of_five_seconds_and_one_loss_period():
    av = run(list("." * 20 + "x" * 50 + "." * 30), outage_ns=3 * NS)
    assert (av.outages, av.loss_periods) == (1, 1)
    assert abs(av.outage_seconds - 5.0) < 1e-9  # first lost send to the first answered one
    assert av.errored_seconds == 5  # packets every 100 ms from a whole second: seconds 2-6


def test_short_loss_periods_are_not_outages_and_each_is_a_period():
    av = run(list("..x...xx..x" * 3), outage_ns=3 * NS)
    assert (av.outages, av.outage_seconds, av.loss_periods) == (0, 0.0, 9)
    assert av.errored_seconds == 4  # 33 packets over 3.3 s: the errors fall in seconds 0, 1, 2 and 3


def test_an_outage_counts_its_time_while_it_lasts():
    av = run(list("." * 5 + "x" * 60), outage_ns=NS)  # still down at the end
    assert av.outages == 1 and abs(av.outage_seconds - 5.9) < 1e-9  # to the last lost send so far


def test_slow_round_trips_make_errored_seconds_only_when_a_bound_is_set():
    fates = list("." * 10 + "s" + "." * 9 + "s" * 3 + "." * 7 + "i")
    assert run(fates, outage_ns=NS).errored_seconds == 0
    av = run(fates, outage_ns=NS, errored_rtt_ns=20 * MS)
    assert av.errored_seconds == 2 and av.loss_periods == 0


def test_counting_goes_on_across_the_32_bit_sequence_wrap():
    av = Availability(outage_ns=NS, interval_ns=100 * MS)
    av._next = 0xFFFF_FFFE  # as after 2^32 - 2 packets
    t0 = 10 * NS
    seqs = [0xFFFF_FFFE, 0xFFFF_FFFF, 0, 1, 2]
    av.on_event(reply(seqs[1], t0 + 100 * MS))  # out of order across the wrap
    av.on_event(Lost(seqs[0], t0))
    for i, seq in enumerate(seqs[2:], start=2):
        av.on_event(Lost(seq, t0 + i * 100 * MS))
    assert av.loss_periods == 2 and av._next == 3
