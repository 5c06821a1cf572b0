"""Plots of a run: delay over time with losses marked, and a delay histogram.

Needs matplotlib, an optional extra (``pip install 'stamp-suite[plot]'``): the core
install stays small.  Input is the per-packet records of a run, live or read back from
a JSON-lines file written with ``--output-format json -R``.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

from .report import parse_rfc3339, rfc3339

WIDTH_PX, HEIGHT_PX, DPI = 1200, 800, 100
NEEDS_MATPLOTLIB = ("plotting needs matplotlib: install it into stamp-suite's environment (pip install "
                    "matplotlib, or from the source tree: pip install '.[plot]')")


def check_available(*outputs: str | None) -> None:
    """Before a run that will plot: is matplotlib there, and can its files be written?  (Not
    after an hour of measuring.)  Nothing is created: a run that fails leaves no empty file."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotError(NEEDS_MATPLOTLIB) from None
    for out in filter(None, outputs):
        path = Path(out)
        folder = path.parent
        if not folder.is_dir():
            raise PlotError(f"cannot write {out}: no directory {folder}")
        if path.is_dir() or not os.access(path if path.exists() else folder, os.W_OK):
            raise PlotError(f"cannot write {out}: " + ("a directory" if path.is_dir() else "permission denied"))


class PlotError(RuntimeError):
    """The plot cannot be made; the message is one line."""


def load_records(path: str) -> list[dict[str, Any]]:
    records = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    raise PlotError(f"{path}:{n}: not a JSON line") from None
                if obj.get("type") == "packet":
                    if "t1" not in obj and "t1_ns" in obj:  # schema_version 1: POSIX ns integers
                        obj["t1"] = rfc3339(obj["t1_ns"])
                    records.append(obj)
    except OSError as exc:
        raise PlotError(f"cannot read {path}: {exc.strerror}") from None
    if not records:
        raise PlotError(f"{path}: no per-packet records (write them with --output-format json -R)")
    return records


def render_png(records: list[dict[str, Any]], out: str, title: str = "STAMP session") -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotError(NEEDS_MATPLOTLIB) from None
    t1 = {id(r): parse_rfc3339(r["t1"]) for r in records if r.get("t1")}
    samples = [r for r in records if r["kind"] == "sample" and id(r) in t1]
    lost = [r for r in records if r["kind"] == "lost" and id(r) in t1]
    t0 = min(t1[id(r)] for r in samples + lost) if samples or lost else 0

    fig, (ax_t, ax_h) = plt.subplots(2, 1, figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI,
                                     gridspec_kw={"height_ratios": [3, 2]})
    xs = [(t1[id(r)] - t0) / 1e9 for r in samples]
    ax_t.plot(xs, [r["rtt_ns"] / 1e6 for r in samples], ".-", ms=3, lw=0.6, label="round trip")
    ax_t.plot(xs, [r["forward_ns"] / 1e6 for r in samples], ".", ms=2, alpha=0.6, label="one-way forward")
    ax_t.plot(xs, [r["backward_ns"] / 1e6 for r in samples], ".", ms=2, alpha=0.6, label="one-way backward")
    if lost:
        ax_t.plot([(t1[id(r)] - t0) / 1e9 for r in lost], [0] * len(lost), "x", color="red", ms=7,
                  label=f"lost ({len(lost)})")
    ax_t.set_xlabel("time since first packet (s)")
    ax_t.set_ylabel("delay (ms)")
    ax_t.set_title(title)
    ax_t.grid(True, alpha=0.3)
    ax_t.legend(loc="upper right", fontsize="small")
    rtts = [r["rtt_ns"] / 1e6 for r in samples]
    if rtts:
        ax_h.hist(rtts, bins=min(100, max(10, len(rtts) // 10)))
    ax_h.set_xlabel("round-trip delay (ms)")
    ax_h.set_ylabel("packets")
    ax_h.grid(True, alpha=0.3)
    fig.tight_layout()
    try:
        fig.savefig(out, dpi=DPI)
    except OSError as exc:
        raise PlotError(f"cannot write {out}: {exc.strerror}") from None
    finally:
        plt.close(fig)


def render_html(png: str, out: str, title: str, summary_text: str = "") -> None:
    """A self-contained page: the PNG inline and the text summary."""
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1><img alt='delay plot' src='data:image/png;base64,{data}'>"
            f"<pre>{html.escape(summary_text)}</pre></body></html>\n")
    try:
        Path(out).write_text(page, encoding="utf-8")
    except OSError as exc:
        raise PlotError(f"cannot write {out}: {exc.strerror}") from None
