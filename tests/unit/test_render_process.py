"""The monitor's render process (observability/render_process.py): the text it makes, and
what happens when a render fails, the copy gives up, the child dies or the monitor closes."""

from __future__ import annotations

import marshal
import os
import signal
import threading
import time

import pytest

from stamp_suite.monitor.exposition import MonitorExposition, expose_parts
from stamp_suite.observability.render_process import STOP_WAIT_S, RenderFailed, RenderJob, RenderProcess
from stamp_suite.sender.sliced import SlicedWork

RENDER = "stamp_suite.monitor.exposition:expose_parts"
UP = [("up", [(f'monitor="vp1",target="t{i}"', i % 2) for i in range(50)])]


def blobs(parts) -> list[bytes]:
    return [marshal.dumps(part) for part in parts]


def render(process: RenderProcess, parts, fail: BaseException | None = None, timeout: float = 10) -> list[bytes]:
    job = RenderJob()
    process.begin(job)
    job.put(blobs(parts))
    if fail is not None:
        job.fail(fail)
    job.end()
    return job.answer.result(timeout)


@pytest.fixture
def process():
    p = RenderProcess(RENDER)
    yield p
    p.close()


def test_the_child_makes_the_text_this_process_would(process):
    got = b"".join(render(process, UP))
    assert got == b"".join(expose_parts(marshal.loads(b) for b in blobs(UP)))
    assert b'stamp_monitor_target_up{monitor="vp1",target="t49"} 1\n' in got


def test_a_failed_render_is_said_and_the_next_one_is_whole(process):
    """A part the child cannot format: its error comes back (a 500 for that scrape), and the
    rest of that render's messages are read, so that the next render starts in step."""
    stale = [("up", [('monitor="vp1",target="stale"', 1)])]
    with pytest.raises(RenderFailed, match="KeyError: 'bogus'"):
        render(process, [("bogus", [1]), *stale])
    assert b"".join(render(process, UP)) == b"".join(expose_parts(UP))
    assert b"".join(render(process, UP)) == b"".join(expose_parts(UP))


def test_a_copy_that_gives_up_fails_its_render_only(process):
    with pytest.raises(TimeoutError):
        render(process, UP, fail=TimeoutError("the scrape gave up"))
    assert b"target_up" in b"".join(render(process, UP))


def test_a_child_killed_while_rendering_fails_that_render_and_is_started_again(process):
    job = RenderJob()
    process.begin(job)
    job.put(blobs(UP))
    deadline = time.monotonic() + 10
    while process.pid is None and time.monotonic() < deadline:
        time.sleep(0.01)
    first = process.pid
    os.kill(first, signal.SIGKILL)
    time.sleep(0.1)
    job.end()
    with pytest.raises(RenderFailed, match="ended while rendering"):
        job.answer.result(10)
    assert b"target_up" in b"".join(render(process, UP))
    assert process.pid not in (None, first)


def test_close_ends_a_render_that_waits_for_its_copy_and_the_child():
    """A monitor that stops while a copy is under way: the render fails at once, the child
    leaves, and close() does not wait for blobs that will not come."""
    process = RenderProcess(RENDER)
    job = RenderJob()
    process.begin(job)
    job.put(blobs(UP))  # and never ended
    deadline = time.monotonic() + 10
    while process.pid is None and time.monotonic() < deadline:
        time.sleep(0.01)
    child = process.pid
    started = time.monotonic()
    process.close()
    assert time.monotonic() - started < STOP_WAIT_S + 1
    with pytest.raises(RenderFailed, match="closed"):
        job.answer.result(5)
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


class _Monitor:
    """What MonitorExposition reads of a monitor, with a loop of its own stepping its work."""

    name = "vp1"

    def __init__(self) -> None:
        from stamp_suite.observability.metrics import DELAY_BUCKETS_S, BucketHistogram, SenderMetrics

        self.metrics = SenderMetrics(("monitor", "target"))
        self.schedule_error = BucketHistogram(DELAY_BUCKETS_S)
        self.logged: list[str] = []
        self.work = SlicedWork()
        self.driver = self
        self.running = True
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while self.running:
            self.work.step() if self.work.pending else time.sleep(0.001)
        self.work.stop("stopped")

    def log(self, line: str) -> None:
        self.logged.append(line)

    def skipped_sends(self) -> int:
        return 3

    def windows(self):
        return iter(())

    def targets_up(self):
        return iter([("a", True), ("b", False)])


def test_without_a_render_process_the_loop_formats_and_says_so(monkeypatch):
    monitor = _Monitor()
    monkeypatch.setattr("sys.executable", "")
    exposition = MonitorExposition(monitor)
    try:
        text = b"".join(exposition.exposition_future().result(10))
    finally:
        monitor.running = False
        exposition.close()
    assert b'stamp_monitor_target_up{monitor="vp1",target="b"} 0\n' in text
    assert b'stamp_monitor_sends_skipped_total{monitor="vp1"} 3\n' in text
    assert len(monitor.logged) == 1 and "no render process" in monitor.logged[0]
    assert "sys.executable is empty" in monitor.logged[0]


def test_with_a_render_process_the_text_is_the_same():
    monitor = _Monitor()
    exposition = MonitorExposition(monitor)
    try:
        text = b"".join(exposition.exposition_future().result(10))
        here = b"".join(monitor.work.submit(exposition.render()).result(10))
    finally:
        monitor.running = False
        exposition.close()
    assert text == here and b'target="b"} 0\n' in text
    assert monitor.logged == []
