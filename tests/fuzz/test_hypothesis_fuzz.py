"""Bounded fuzzing in CI: hypothesis drives the properties atheris checks for long (fuzz/)."""

from checks import check_packet, check_reflector, check_sender, check_tlv, make_reflectors, make_senders
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from make_corpus import seeds

SEEDS = list(seeds().values())
# 1,000 examples a property keeps the suite within its 4 minutes; the long runs are atheris's (fuzz/)
FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
REFLECTORS = make_reflectors()
SENDERS = make_senders()


@st.composite
def datagrams(draw):
    """Seeds mutated (bytes flipped, cut, extended, TLV lengths made hostile) or pure noise."""
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.binary(max_size=600))
    data = bytearray(draw(st.sampled_from(SEEDS)))
    if kind == 1:
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
    elif kind == 2:
        data = data[:draw(st.integers(0, len(data)))]
    elif kind == 3:
        data += draw(st.binary(max_size=200))
    else:  # a hostile Length in some TLV header position
        i = draw(st.integers(44, max(44, len(data) - 2)))
        data[i:i + 2] = draw(st.integers(0, 0xFFFF)).to_bytes(2, "big")
    return bytes(data)


@FUZZ
@given(datagrams())
def test_reflector_never_raises_never_amplifies_counts_every_drop(data):
    check_reflector(REFLECTORS, data)


@FUZZ
@given(datagrams())
def test_parsers_raise_only_their_own_errors(data):
    check_packet(data)
    check_tlv(data[min(44, len(data)):])


@FUZZ
@given(datagrams())
def test_sender_classifies_anything(data):
    check_sender(SENDERS, data)
