"""The monitor's Prometheus view: cumulative series per target, plus its latest closed windows.

Up to a million lines.  The sending loop copies the numbers out as plain rows, marshalled a
slice at a time between its sends (sender/sliced.py says why), and hands them to a render
process that formats them on another core as they come (observability/render_process.py);
where that process cannot be started, or has died MAX_DEATHS renders in a row, the loop
formats them too, in the time it would otherwise sleep.
"""

from __future__ import annotations

import marshal
import weakref
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import CancelledError, Future

from ..observability.exposition import Families, label_text
from ..observability.metrics import BUILD_FAMILIES, ROWS_PER_SLICE, SESSION_FAMILIES, build_lines, session_lines
from ..observability.render_process import RenderJob, RenderProcess
from ..say import count
from .metrics import (
    OWN_FAMILIES,
    SCHEDULE_FAMILIES,
    UP_FAMILIES,
    WINDOW_FAMILIES,
    schedule_lines,
    schedule_row,
    up_lines,
    window_lines,
    window_rows,
)

Part = tuple[str, list]  # (kind, rows): "sessions", "schedule", "windows" or "up"
FAMILIES = BUILD_FAMILIES + SESSION_FAMILIES + SCHEDULE_FAMILIES + OWN_FAMILIES + WINDOW_FAMILIES + UP_FAMILIES
LINES = {"sessions": session_lines, "schedule": schedule_lines, "windows": window_lines, "up": up_lines}
# Lines per piece of the render process's text: about 100 KB, under the allocator's mmap
# threshold, so each piece reuses memory instead of faulting in fresh pages.
TEXT_LINES = 1000
BLOBS_PER_HANDOFF = 8  # slices handed to the render process at once (each wakes its thread)
MAX_DEATHS = 3  # renders in a row that end with the render process before the loop formats


def monitor_families() -> Families:
    f = Families(FAMILIES)
    build_lines(f)
    return f


def expose_parts(parts: Iterable[Part]) -> Iterator[bytes]:
    """The render process's work: the text of the parts MonitorExposition.snapshot made,
    formatted as they come."""
    f = monitor_families()
    for kind, rows in parts:
        LINES[kind](f, rows)
    return f.pieces(chunk_lines=TEXT_LINES)


def _copy_ended(copying: Future, job: RenderJob) -> None:
    """A copy that failed, stopped with the loop or was given up fails its render too (one
    that finished has ended its job itself)."""
    if copying.cancelled():
        job.fail(CancelledError("the scrape gave up"))
    elif copying.exception() is not None:
        job.fail(copying.exception())


class MonitorExposition:
    """A monitor's /metrics (the source of its MetricsServer)."""

    def __init__(self, monitor) -> None:
        self.monitor = monitor
        self.process: RenderProcess | None = RenderProcess(f"{__name__}:expose_parts", on_died=self._died)
        self._started = False

    def exposition_future(self) -> Future | None:
        """A future of the text's pieces, or None when the loop has its hands full of renders
        already (the server answers 503)."""
        work = self.monitor.driver.work
        process = self.process  # once: _died (the render I/O thread) may set it to None
        if process is not None and not self._started:
            self._started = True
            try:
                process.start()
            except OSError as exc:
                self.monitor.log(f"metrics: no render process ({exc}); the sending loop formats /metrics too, "
                                 "which makes a scrape of many targets slower")
                self.process = process = None
        if process is None:
            return work.submit(self.render())
        job = RenderJob()
        copying = work.submit(self.copy_out(job))
        if copying is None:
            return None
        copying.add_done_callback(lambda done: _copy_ended(done, job))
        process.begin(job)
        # an answer given up or failed stops the copy; weakly, or the two futures would keep
        # each other (and the text, 88 MB at 10,000 targets) until a full garbage collection
        copy = weakref.ref(copying)
        job.answer.add_done_callback(lambda answer: (answer.cancelled() or answer.exception() is not None)
                                     and (c := copy()) is not None and c.cancel())
        return job.answer

    def _died(self, why: str) -> None:
        """Said each time; after MAX_DEATHS in a row, the loop formats the text from then on."""
        process = self.process
        if process is None:
            return
        if process.died < MAX_DEATHS:
            self.monitor.log(f"metrics: {why}; the next scrape starts another")
            return
        self.process = None
        process.close()
        self.monitor.log(f"metrics: {why}, {count(process.died, 'time')} in a row; the sending loop formats "
                         "/metrics from now on, which makes a scrape of many targets slower")

    def snapshot(self) -> Iterator[Part]:
        """The numbers of every series, a slice at a time; a slice must be marshalled (a copy)
        before the next, as the rows hold live lists."""
        m = self.monitor

        def labels(target: str) -> str:
            return m.metrics.labels((m.name, target))
        for rows in m.metrics.rows():
            yield "sessions", rows
        yield "schedule", [schedule_row(label_text(("monitor",), (m.name,)), m.schedule_error, m.skipped_sends(),
                                        m.dropped_unread(), m.reloads, len(m.unresolved), m.target_sources(),
                                        m.timestamping(), m.discovery.failures())]
        for rows in window_rows(m.windows(), labels):
            yield "windows", rows
        up = list(m.targets_up())
        for i in range(0, len(up), ROWS_PER_SLICE):
            yield "up", [(labels(target), 1 if is_up else 0) for target, is_up in up[i:i + ROWS_PER_SLICE]]

    def copy_out(self, job: RenderJob) -> Generator[None, None, None]:
        """A task for the sending loop: the snapshot, marshalled and handed to ``job``."""
        blobs = []
        for part in self.snapshot():
            blobs.append(marshal.dumps(part))
            if len(blobs) == BLOBS_PER_HANDOFF:
                job.put(blobs)
                blobs = []
            yield
        job.put(blobs)
        job.end()

    def render(self) -> Generator[None, None, list[bytes]]:
        """A task for the sending loop when there is no render process: the whole text, each
        step a slice; returns the pieces."""
        f = monitor_families()
        for kind, rows in self.snapshot():
            LINES[kind](f, rows)
            yield
        pieces = []
        for piece in f.pieces():
            pieces.append(piece)
            yield
        return pieces

    def close(self) -> None:
        if self.process is not None:
            self.process.close()
