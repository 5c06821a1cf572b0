"""examples/*.toml load through the program's own loaders, and each lists every key its file
takes: a setting added without an example line fails here.  A commented-out line
(``# key = value``) shows the default, or an example value where the default is none."""

import re
import tomllib
from pathlib import Path

import msgspec
import pytest

from stamp_suite.config import FILE_KEYS, SECTION_OF, SECTIONS, TOP_KEYS, build_settings
from stamp_suite.monitor.config import MONITOR_KEYS, TARGET_KEYS, _MonitorTable, load_config
from stamp_suite.monitor.series import exposure
from stamp_suite.observability.metrics import DEFAULT, MONITOR_RTT_BUCKETS_S, Exposure
from stamp_suite.units import DURATIONS, setting_duration

EXAMPLES = Path(__file__).parents[2] / "examples"
# What each role's file reads (config._check_role refuses the rest): the sender's sections,
# or the reflector's and its two output switches; both take the common ones and is_reflector.
_COMMON = {name for name, section in SECTION_OF.items() if section == "common"} & FILE_KEYS
SENDER_KEYS = _COMMON | {"is_reflector"} | {name for name, section in SECTION_OF.items()
                                             if section in ("sender", "tlvs", "output", "export")}
REFLECTOR_KEYS = _COMMON | {"is_reflector", "print_stats", "verbose"} | {
    name for name, section in SECTION_OF.items() if section in ("reflector", "export")}
_COMMENTED = re.compile(r"^# (?=[a-z][a-z0-9_]* = )", re.M)  # "# key = value", not prose


def every_line(path: Path) -> str:
    """The file with its commented-out settings set: every key it lists."""
    return _COMMENTED.sub("", path.read_text())


def commented(text: str) -> dict:
    return tomllib.loads("\n".join(line[2:] for line in text.splitlines() if _COMMENTED.match(line)))


def check_defaults(text: str, keys_of, together: bool = False) -> None:
    """A commented-out value is the default, where there is one, and valid where there is not
    (``together``: checked beside the other commented values, for a key valid only with another)."""
    listed = commented(text)
    for key, value in listed.items():
        kind = keys_of(key)
        if key in DURATIONS and isinstance(value, str):  # "5s": as the loaders read it
            value = setting_duration(key, value)
        converted = msgspec.convert({**(listed if together else {}), key: value}, kind)  # the field's type, range
        default = getattr(kind(), key)
        assert default is None or getattr(converted, key) == default, f"{key} = {value!r}: the default is {default!r}"


def _section(key: str):
    return SECTIONS[SECTION_OF[key]]


@pytest.mark.parametrize("name, keys, reflector", [("sender.toml", SENDER_KEYS, False),
                                                    ("reflector.toml", REFLECTOR_KEYS, True)])
def test_settings_examples_load_and_list_every_key(name, keys, reflector):
    path = EXAMPLES / name
    assert build_settings({}, str(path)).is_reflector is reflector
    listed = set(tomllib.loads(every_line(path)))
    assert listed == keys, f"missing {sorted(keys - listed)}, not settings {sorted(listed - keys)}"
    text = path.read_text()
    # is_reflector is a top key, not in a section: its default (false) is said in words
    check_defaults("\n".join(line for line in text.splitlines() if "is_reflector" not in line), _section)
    assert not TOP_KEYS - {"self_test"} - keys


def test_the_two_roles_together_take_every_file_key():
    assert SENDER_KEYS | REFLECTOR_KEYS == FILE_KEYS


def test_monitor_example_loads_and_lists_every_key():
    path = EXAMPLES / "monitor.toml"
    config = load_config(str(path))
    assert config.targets and all(s.sender.count == 0 for s in config.targets.values())
    tables = tomllib.loads(every_line(path))
    assert set(tables["monitor"]) == set(_MonitorTable.__struct_fields__)
    assert set(tables["defaults"]) == TARGET_KEYS | MONITOR_KEYS
    assert all(set(t) <= TARGET_KEYS | MONITOR_KEYS | {"name", "group"} and "name" in t for t in tables["targets"])
    assert tables["groups"] and all(set(g) <= TARGET_KEYS | MONITOR_KEYS for g in tables["groups"].values())
    text = path.read_text()
    monitor, defaults = text.split("\n[defaults]")
    check_defaults(monitor, lambda key: _MonitorTable, together=True)  # http_sd_refresh needs http_sd
    defaults = defaults.split("\n[groups.")[0]
    check_defaults("\n".join(line for line in defaults.splitlines() if line[2:].split(" ")[0] not in MONITOR_KEYS),
                   _section)
    shown = commented(defaults)  # what the series show, as the example's lines say, is the default
    assert shown["flows"] == 1
    assert exposure(shown, shown["labels"], "example") == Exposure(DEFAULT, MONITOR_RTT_BUCKETS_S) == \
        exposure({}, {}, "no keys")


@pytest.mark.parametrize("name", ["sender.toml", "reflector.toml", "monitor.toml"])
def test_examples_name_only_loopback_addresses(name):
    text = (EXAMPLES / name).read_text()
    for addr in re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", text):
        assert addr.startswith("127."), f"{name}: {addr} is not a loopback address"
