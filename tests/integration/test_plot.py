"""Plots from a live run and from a saved JSON-lines file are valid PNGs of the stated size."""

import struct

from ci import require_module
from helpers import ReflectorProcess, run, send

require_module("matplotlib")


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_plot_live_and_saved(tmp_path):
    live, saved_png, html = tmp_path / "live.png", tmp_path / "saved.png", tmp_path / "run.html"
    jsonl = tmp_path / "run.jsonl"
    with ReflectorProcess() as refl:
        res = send(refl, "--plot-output", str(live), count=10)
        assert res.returncode == 0, res.stderr
        res = send(refl, "--output-format", "json", "-R", count=10)
    jsonl.write_text(res.stdout)
    assert png_size(live) == (1200, 800)
    res = run("--plot", str(jsonl), "--plot-output", str(saved_png), "--plot-html", str(html))
    assert res.returncode == 0, res.stderr
    assert png_size(saved_png) == (1200, 800)
    assert "data:image/png;base64," in html.read_text()


def test_plot_of_a_bad_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    res = run("--plot", str(bad))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "not a JSON line" in res.stderr


def test_a_version_1_file_plots_its_points(tmp_path):
    """schema_version 1 wrote t1_ns integers where version 2 writes RFC 3339 text: both read."""
    import json

    from stamp_suite.sender.plot import load_records
    from stamp_suite.sender.report import parse_rfc3339
    with ReflectorProcess() as refl:
        res = send(refl, "--output-format", "json", "-R", count=5)
    v2 = tmp_path / "v2.jsonl"
    v2.write_text(res.stdout)
    v1_lines = []
    for line in res.stdout.splitlines():
        obj = json.loads(line)
        if obj["type"] == "packet":
            obj["t1_ns"] = parse_rfc3339(obj.pop("t1"))
        v1_lines.append(json.dumps(obj))
    v1 = tmp_path / "v1.jsonl"
    v1.write_text("\n".join(v1_lines) + "\n")
    assert [r["t1"] for r in load_records(str(v1))] == [r["t1"] for r in load_records(str(v2))]
