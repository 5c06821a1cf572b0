"""End to end through the impairment relay: the figures must match what the relay did."""

import statistics

import pytest
from helpers import ReflectorProcess, json_lines, run
from relay import Impairment, ImpairmentRelay

MS = 1_000_000


@pytest.mark.alone  # the one-way figures are held to 0.2 ms of what the relay did
def test_counts_and_delays_match_the_relay():
    fwd = Impairment(drop={3}, delay_ms={5: 8.0, 10: 45.0})
    bwd = Impairment(drop={7}, duplicate={2})
    with ReflectorProcess("--stateful-reflector") as refl, \
            ImpairmentRelay((refl.host, refl.port), fwd, bwd) as relay:
        host, port = relay.address
        res = run("-r", host, "-p", str(port), "-c", "20", "-d", "20", "-L", "1", "--output-format", "json", "-R")
    assert res.returncode == 0, res.stderr
    packets, summary = json_lines(res.stdout)
    p = summary["packets"]
    assert (p["sent"], p["received"], p["lost"], p["duplicates"]) == (20, 18, 2, 1)
    assert p["reordered"] == 1 and summary["reordering"]["extent_max"] == 2  # seq 10 arrived after 11, 12
    assert summary["loss_by_direction"] == {"forward": 1, "backward": 1, "unknown_direction": 0}
    assert relay.fwd_record.dropped == [3] and relay.bwd_record.dropped == [7]

    samples = {pk["seq"]: pk for pk in packets if pk["kind"] == "sample"}
    assert set(samples) == set(range(20)) - {3, 7}
    held = relay.fwd_record.held_ns
    normal = [s for s in samples if s not in (5, 10)]
    base_fwd = statistics.median(samples[s]["forward_ns"] - held[s] for s in normal)
    base_rtt = statistics.median(samples[s]["rtt_ns"] - held[s] for s in normal)
    for seq in (5, 10):  # the tool's one-way and round-trip figures include exactly the relay's hold
        assert abs(samples[seq]["forward_ns"] - held[seq] - base_fwd) < 0.2 * MS
        # The round trip also crosses the relay's backward leg and the sender's wake-up, each a
        # scheduling delay on a loaded machine (0.21 ms seen in CI): 1 ms still tells 8 and 45 ms apart.
        assert abs(samples[seq]["rtt_ns"] - held[seq] - base_rtt) < 1 * MS
        assert held[seq] >= (8 if seq == 5 else 45) * MS
