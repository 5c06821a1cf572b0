"""Every JSON object stamp-suite writes validates against schemas/stamp-report.schema.json
(schema_version 2, strict), and carries no integer a JSON tool would round (> 2^53)."""

import json
import subprocess

import jsonschema
import pytest
from ci import have_tool
from helpers import SCHEMA, ReflectorProcess, check_report, run, send

EVERY_TLV = ["--ssid", "3", "--cos", "--location", "--direct-measurement", "--timestamp-info",
             "--follow-up-telemetry", "--access-report", "1", "--padding", "32", "--dest-node-addr", "127.0.0.1",
             "--micro-session-id", "2"]


def validate_lines(stdout: str) -> list[dict]:
    objs = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    for o in objs:
        check_report(o)
    if have_tool("jq"):  # a real JSON tool reads every line back unchanged
        out = subprocess.run(["jq", "-c", "."], input=stdout, capture_output=True, text=True, check=True).stdout
        assert [json.loads(line) for line in out.splitlines()] == objs
    return objs


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("flags", [[], EVERY_TLV, ["-A", "A", "--hmac-key", "00" * 16, "--ssid", "9", "--cos"]])
def test_summary_and_packets_validate(flags):
    auth = ("-A", "A", "--hmac-key", "00" * 16) if "-A" in flags else ()
    with ReflectorProcess("--stateful-reflector", *auth) as refl:
        res = send(refl, "--output-format", "json", "-R", *flags, count=4)
    objs = validate_lines(res.stdout)
    assert [o["type"] for o in objs] == ["packet"] * 4 + ["summary"]
    if flags == EVERY_TLV:
        assert set(objs[-2]["tlv"]) == {"cos", "location", "direct_measurement", "timestamp_info", "follow_up",
                                       "access_report", "destination_node", "micro_session"}


def test_interim_lost_records_and_empty_run_validate():
    with ReflectorProcess() as refl:
        res = run("-r", refl.host, "-p", str(refl.port), "-c", "12", "-d", "100", "--report-interval", "0.5",
                  "--output-format", "json", "-L", "1")
    objs = validate_lines(res.stdout)
    interim = [o for o in objs if o["type"] == "interim"]
    assert interim and interim[0]["interval"] == {"index": 1, "start_s": 0.0, "end_s": 0.5}
    assert objs[-1]["type"] == "summary"
    # where the kernel counts a socket's drops, every interval says how many: 0, not unknown
    from stamp_suite.net.capabilities import detect_capabilities
    if detect_capabilities().dropped_unread:
        assert [o["packets"]["dropped_unread"] for o in objs] == [0] * len(objs)
    res = run("-r", "127.0.0.1", "-p", "9", "-c", "2", "-d", "5", "-L", "0.2", "--output-format", "json", "-R")
    objs = validate_lines(res.stdout)
    # each packet refused when its ICMP error came, then lost at its timeout
    assert sorted(o["kind"] for o in objs[:-1]) == ["lost", "lost", "refused", "refused"]
    assert objs[-1]["rtt_ns"]["min"] is None


def test_the_strict_schema_refuses_renamed_and_unknown_fields():
    with ReflectorProcess() as refl:
        res = send(refl, "--output-format", "json", "-R", "--cos", count=1)
    packet, summary = (json.loads(line) for line in res.stdout.splitlines())
    for broken in ({**summary, "packets": {k: v for k, v in summary["packets"].items() if k != "lost"}},
                   {**summary, "extra": 1},
                   {**packet, "t1_ns": 1},
                   {**packet, "tlv": {"cos": {**packet["tlv"]["cos"], "dscp": 1}}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, SCHEMA)


def _statistics(obj: dict, path: str = ""):
    """Every statistics object of a summary (rtt_ns, one_way.forward_ns, ...), by its path."""
    for key, value in obj.items():
        if isinstance(value, dict) and "percentile_method" in value:
            yield f"{path}{key}", value
        elif isinstance(value, dict):
            yield from _statistics(value, f"{path}{key}.")


def test_numbers_have_the_types_the_schema_and_readme_give():
    """count, min, max: integers; exact percentiles: integers (values seen); mean, stddev and
    jitter: numbers (fractions of a ns), as the README's Reports section says."""
    with ReflectorProcess() as refl:
        res = send(refl, "--output-format", "json", count=5)
    summary = validate_lines(res.stdout)[-1]
    stats = dict(_statistics(summary))
    assert {"rtt_ns", "rtt_raw_ns", "residence_ns", "one_way.forward_ns", "delay_variation.ipdv_rtt_ns"} <= set(stats)
    for path, s in stats.items():
        if not s["count"]:
            continue
        assert all(type(s[k]) is int for k in ("count", "min", "max")), path
        assert all(type(v) is int for v in s["percentiles"].values()), path  # exact: 5 values
        assert all(isinstance(s[k], (int, float)) for k in ("mean", "stddev")), path
    for name in ("rtt_ns", "residence_ns"):  # and the schema says so
        props = SCHEMA["$defs"]["summary"]["properties"][name]["properties"]
        assert props["min"]["type"] == props["max"]["type"] == ["integer", "null"]
        assert props["mean"]["type"] == ["number", "null"]
