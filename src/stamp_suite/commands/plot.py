"""Plots of a run (``--plot-output``, ``--plot-html``) and of a saved one (``--plot FILE``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import Settings
from ..sender.plot import check_available, load_records, render_html, render_png
from ..sender.report import summary_text

__all__ = ["check_available", "run_saved", "write"]  # check_available: before a run that will plot


def write(s: Settings, records: list[dict[str, Any]], title: str, summary: dict[str, Any] | None = None,
          session: dict[str, Any] | None = None) -> None:
    assert s.output.plot_output is not None
    render_png(records, s.output.plot_output, title)
    if s.output.plot_html:
        render_html(s.output.plot_output, s.output.plot_html, title, summary_text(summary, session) if summary else "")


def run_saved(s: Settings) -> int:
    records = load_records(s.output.plot)
    out = s.output.plot_output or str(Path(s.output.plot).with_suffix(".png"))
    write(s.replace(plot_output=out), records, f"STAMP run {Path(s.output.plot).name}")
    print(f"wrote {out}" + (f" and {s.output.plot_html}" if s.output.plot_html else ""))
    return 0
