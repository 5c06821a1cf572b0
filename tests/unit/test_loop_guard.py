"""The loop tag in T3 (reflector/loop_guard.py): small, always recognised, never a false
alarm on what real senders send."""

import random

from hypothesis import given
from hypothesis import strategies as st

from stamp_suite.reflector.loop_guard import TAG_MASK, WINDOW_S, LoopTag

NOW_NTP_S = 3_913_056_000  # 2024-01-01 in NTP seconds
NS = 1_000_000_000


@given(key=st.integers(0, 2**128 - 1), secs=st.integers(0, 2**32 - 1), low=st.integers(0, 2**32 - 1))
def test_an_ntp_t3_moves_under_a_microsecond_and_is_recognised(key, secs, low):
    tag = LoopTag(key)
    wire = (secs << 32) | low
    marked = tag.mark(wire)
    assert marked >> 32 == secs and abs((marked & 0xFFFF_FFFF) - low) <= TAG_MASK  # 2^-32 s each: < 238 ns
    assert tag.is_ours(marked, secs) and tag.is_ours(marked, (secs + WINDOW_S) % 2**32)
    assert not tag.is_ours(marked, (secs + WINDOW_S + 1) % 2**32)  # over a day away: not a loop of ours


@given(key=st.integers(0, 2**128 - 1), secs=st.integers(0, 2**32 - 1), ns=st.integers(0, NS - 1))
def test_a_ptp_t3_stays_a_valid_nanosecond_count(key, secs, ns):
    tag = LoopTag(key, ptp=True)
    marked = tag.mark((secs << 32) | ns)
    assert marked >> 32 == secs and (marked & 0xFFFF_FFFF) < NS and abs((marked & 0xFFFF_FFFF) - ns) <= 2 * TAG_MASK
    assert tag.is_ours(marked, secs)


def test_random_octets_are_not_taken_for_our_reply():
    # What the engine asks of the copied T3 and Error Estimate of any packet: a million random
    # ones (TWAMP-Light padding), none matched; by the numbers, one in 1.7 * 10^12 would.
    rng = random.Random(4656)
    tag, our_ee = LoopTag(rng.getrandbits(128)), 0x8001
    hits = sum(rng.getrandbits(16) == our_ee and tag.is_ours(rng.getrandbits(64), NOW_NTP_S)
               for _ in range(1_000_000))
    assert hits == 0
    # the tag alone: about one in 2^10 * (2 days / 2^32 s)
    hits = sum(tag.is_ours(rng.getrandbits(64), NOW_NTP_S) for _ in range(200_000))
    assert hits <= 1
