"""The monitor's Prometheus view: cumulative series per target, plus its latest closed windows.

Up to a million lines.  The sending loop copies the numbers out as plain rows, in slices
between its sends (sender/sliced.py says why), and a render process makes the text on
another core (observability/render_process.py says why); where that process cannot be
started, the loop makes the text too, in slices, in the time it would otherwise sleep.
"""

from __future__ import annotations

import marshal
from collections.abc import Generator, Iterator
from concurrent.futures import Future

from ..observability.exposition import Exposition, label_text
from ..observability.metrics import (ROWS_PER_SLICE, expose_build_info, expose_schedule, expose_sessions,
                                     expose_windows, schedule_row, window_rows)
from ..observability.render_process import RenderProcess

Part = tuple[str, list]  # ("sessions" | "schedule" | "windows" | "up", rows)


def expose_parts(parts: list[Part]) -> Iterator[bytes]:
    """The exposition of a monitor from what MonitorExposition.snapshot copied out, a piece at
    a time (at each ``yield``, as SenderMetrics.expose); the render process's work."""
    rows: dict[str, list] = {"sessions": [], "schedule": [], "windows": [], "up": []}
    for kind, some in parts:
        rows[kind] += some
    x = Exposition()
    expose_build_info(x)
    yield from expose_sessions(x, rows["sessions"])
    for schedule in rows["schedule"]:
        expose_schedule(x, schedule)
    yield from expose_windows(x, rows["windows"], rows["up"])
    yield x.take()


class MonitorExposition:
    """A monitor's /metrics (the source of its MetricsServer)."""

    def __init__(self, monitor) -> None:
        self.monitor = monitor
        self.process: RenderProcess | None = RenderProcess(f"{__name__}:expose_parts")
        self._started = False

    def exposition_future(self) -> Future | None:
        """A future of the text's pieces, or None when the loop has its hands full of renders
        already (the server answers 503)."""
        work = self.monitor.driver.work
        if self.process is not None and not self._started:
            self._started = True
            try:
                self.process.start()
            except OSError as exc:
                self.monitor.log(f"metrics: no render process ({exc}); the sending loop renders /metrics, "
                                 "which takes it longer")
                self.process = None
        if self.process is None:
            return work.submit(self.render())
        blobs = work.submit(self.copy_out())
        return None if blobs is None else self.process.after(blobs)

    def snapshot(self) -> Iterator[Part]:
        """The numbers of every series, a slice at a time; each slice is marshalled (a copy)
        before the next, as the rows hold live lists."""
        m = self.monitor

        def labels(target: str) -> str:
            return m.metrics.labels((m.name, target))
        for rows in m.metrics.rows():
            yield "sessions", rows
        yield "schedule", [schedule_row(label_text(("monitor",), (m.name,)), m.schedule_error, m.skipped_sends())]
        for rows in window_rows(m.windows(), labels):
            yield "windows", rows
        up = list(m.targets_up())
        for i in range(0, len(up), ROWS_PER_SLICE):
            yield "up", [(labels(target), 1 if is_up else 0) for target, is_up in up[i:i + ROWS_PER_SLICE]]

    def copy_out(self) -> Generator[None, None, list[bytes]]:
        """A task for the sending loop: the snapshot as marshal blobs (for the render process)."""
        blobs = []
        for part in self.snapshot():
            blobs.append(marshal.dumps(part))
            yield
        return blobs

    def render(self) -> Generator[None, None, list[bytes]]:
        """A task for the sending loop: the whole text, each step a slice; returns the pieces."""
        parts = []
        for blob in (yield from self.copy_out()):
            parts.append(marshal.loads(blob))
            yield
        pieces = []
        for piece in expose_parts(parts):
            pieces.append(piece)
            yield
        return pieces

    def close(self) -> None:
        if self.process is not None:
            self.process.close()
