import pytest
from hypothesis import given
from hypothesis import strategies as st
from vectors import NS, T1_NS, T3_NS

from stamp_suite.wire.timestamp import (
    ErrorEstimate,
    TimestampFormat,
    error_estimate_fields,
    from_wire,
    ntp_from_ns,
    ntp_to_ns,
    ptp_from_ns,
    ptp_to_ns,
)


def test_ntp_worked_example_values():
    # Digest §6: T1 = ...00.500000 -> 0xe93c7f00_80000000, T3 = ...00.750250 -> 0xe93c7f00_c010624d
    assert ntp_from_ns(T1_NS) == 0xE93C7F00_80000000
    assert ntp_from_ns(T3_NS) == 0xE93C7F00_C010624D


def test_ntp_fraction_is_truncated_and_loses_at_most_one_ns():
    # Digest §6.3: T3 - T2 comes back as 249 999 ns, not 250 000.
    assert ntp_to_ns(0xE93C7F00_C010624D) - ntp_to_ns(0xE93C7F00_C0000000) == 249_999


def test_ntp_era_wrap_2036():
    # 2036-02-07T06:28:16Z is NTP second 2^32: the wire seconds wrap to 0.
    wrap_ns = (2**32 - 2_208_988_800) * NS
    assert ntp_from_ns(wrap_ns) >> 32 == 0
    assert ntp_to_ns(ntp_from_ns(wrap_ns + 5 * NS)) == wrap_ns + 5 * NS  # era 1 recognised without pivot
    assert ntp_to_ns(ntp_from_ns(wrap_ns - NS), pivot_ns=wrap_ns) == wrap_ns - NS
    assert ntp_to_ns(ntp_from_ns(wrap_ns + NS), pivot_ns=wrap_ns - 10 * NS) == wrap_ns + NS


def test_ptp_is_tai_with_configurable_offset():
    ts = ptp_from_ns(T1_NS)  # default TAI - UTC = 37 s
    assert ts >> 32 == 1_704_067_200 + 37
    assert ts & 0xFFFFFFFF == 500_000_000
    assert ptp_from_ns(T1_NS, tai_offset_s=0) >> 32 == 1_704_067_200
    assert ptp_to_ns(ts) == T1_NS


@given(st.integers(min_value=0, max_value=(2**32 - 2_208_988_800) * NS * 2 - 1))
def test_ntp_round_trip_within_one_ns(t):
    back = ntp_to_ns(ntp_from_ns(t), pivot_ns=t)
    assert 0 <= t - back <= 1


@given(st.integers(min_value=0, max_value=2**32 * NS - 38 * NS))
def test_ptp_round_trip_exact(t):
    assert from_wire(ptp_from_ns(t), TimestampFormat.PTP, pivot_ns=t) == t


def test_error_estimate_bits():
    # Digest §1.7: 0x8001 = synchronised, NTP, error 2^-32 s
    ee = ErrorEstimate.from_int(0x8001)
    assert (ee.synchronized, ee.timestamp_format, ee.scale, ee.multiplier) == (True, TimestampFormat.NTP, 0, 1)
    assert ErrorEstimate(False, TimestampFormat.PTP, 0x3F, 0xFF).to_int() == 0x7FFF
    assert not ErrorEstimate.from_int(0x8000).valid  # Multiplier 0 is corrupt


def test_error_estimate_fields_from_digest():
    # Digest §1.7: 0x8001 is synchronised, NTP, Multiplier 1 x 2^(0-32) s; 0x4001 (from its S and Z
    # masks, 0x8000 and 0x4000): unsynchronised, PTP
    assert error_estimate_fields(0x8001) == (TimestampFormat.NTP, True, 1e9 / 2**32)
    assert error_estimate_fields(0x4001)[:2] == (TimestampFormat.PTP, False)


@given(st.integers(min_value=0, max_value=0xFFFF))
def test_error_estimate_round_trip(v):
    assert ErrorEstimate.from_int(v).to_int() == v


@pytest.mark.parametrize("error_ns", [1, 100, 1_000, 50_000, 1_000_000, 10**9, 10**12])
def test_error_estimate_from_error_never_understates(error_ns):
    ee = ErrorEstimate.from_error(error_ns, synchronized=True)
    assert ee.valid and ee.error_ns >= error_ns
    units = -(-(error_ns << 32) // NS)  # the error in 2^-32 s, rounded up
    if ee.scale:  # the smallest scale that can hold it
        assert -(-units // (1 << (ee.scale - 1))) > 255


def test_error_estimate_rejects_out_of_range():
    with pytest.raises(ValueError):
        ErrorEstimate(scale=64)
