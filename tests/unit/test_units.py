"""Durations as an operator types them (units.py)."""

import pytest

from stamp_suite.units import parse_duration, setting_duration


@pytest.mark.parametrize("text, unit, value", [
    ("20", "ms", 20.0), ("20ms", "ms", 20.0), ("1.5s", "ms", 1500.0), (".5s", "ms", 500.0), ("1e3ms", "s", 1.0),
    ("200us", "ms", 0.2), ("200µs", "ms", 0.2), ("200μs", "ms", 0.2), ("10MS", "ms", 10.0), ("5m", "s", 300.0),
    ("1h30m", "s", 5400.0), ("2m30s", "s", 150.0), ("0", "s", 0.0)])
def test_a_duration_in_the_settings_unit(text, unit, value):
    assert parse_duration(text, unit) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "ms", "-1", "1h30", "5 parsecs", "1e999s", "1.2.3s", "5x"])
def test_what_is_not_a_duration(text):
    with pytest.raises(ValueError):
        parse_duration(text, "s")


def test_whole_units_where_a_setting_counts_them():
    assert setting_duration("session_timeout", "5m") == 300 and setting_duration("busy_poll", "1ms") == 1000
    with pytest.raises(ValueError, match="whole number of seconds"):
        setting_duration("session_timeout", "1.5s")
