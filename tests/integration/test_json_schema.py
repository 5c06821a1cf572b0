"""Every JSON object the sender writes validates against schemas/stamp-report.schema.json."""

import json
from pathlib import Path

import jsonschema
import pytest

from helpers import ReflectorProcess, run, send

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "stamp-report.schema.json").read_text())


def validate_lines(stdout: str) -> list[dict]:
    objs = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    for o in objs:
        jsonschema.validate(o, SCHEMA)
    return objs


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("flags", [[], ["--cos", "--location", "--direct-measurement", "--timestamp-info",
                                        "--follow-up-telemetry", "--access-report", "1", "--padding", "32"]])
def test_summary_and_packets_validate(flags):
    with ReflectorProcess("--stateful-reflector") as refl:
        res = send(refl, "--output-format", "json", "-R", *flags, count=4)
    objs = validate_lines(res.stdout)
    assert [o["type"] for o in objs] == ["packet"] * 4 + ["summary"]


def test_interim_summaries_and_empty_run_validate():
    with ReflectorProcess() as refl:
        res = run("-r", refl.host, "-p", str(refl.port), "-c", "12", "-d", "100", "--report-interval", "0.5",
                  "--output-format", "json", "-L", "1")
    objs = validate_lines(res.stdout)
    assert "interim" in [o["type"] for o in objs] and objs[-1]["type"] == "summary"
    res = run("-r", "127.0.0.1", "-p", "9", "-c", "1", "-L", "0.2", "--output-format", "json")
    (summary,) = validate_lines(res.stdout)
    assert summary["packets"]["received"] == 0 and summary["rtt_ns"]["min"] is None


def test_schema_rejects_a_broken_summary():
    with ReflectorProcess() as refl:
        res = send(refl, "--output-format", "json", count=1)
    summary = json.loads(res.stdout)
    del summary["packets"]["lost"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(summary, SCHEMA)
