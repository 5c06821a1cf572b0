"""The monitor's render process (observability/render_process.py): the text it makes, and
what happens when a render fails, the copy gives up, the child dies or the monitor closes."""

from __future__ import annotations

import marshal
import os
import signal
import threading
import time

import pytest
from vectors import T1, sample

from stamp_suite.monitor.exposition import MonitorExposition, expose_parts
from stamp_suite.monitor.windows import ClosedWindow
from stamp_suite.observability.render_process import (
    STOP_WAIT_S,
    RenderClosed,
    RenderDied,
    RenderFailed,
    RenderJob,
    RenderProcess,
)
from stamp_suite.sender.availability import NS, Availability
from stamp_suite.sender.events import Reply, Sent
from stamp_suite.sender.sliced import SlicedWork
from stamp_suite.sender.stats import SessionStats

RENDER = "stamp_suite.monitor.exposition:expose_parts"
UP = [("up", [(f'monitor="vp1",target="t{i}"', i % 2) for i in range(50)])]


def gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.01)
    return False


def wait_for_child(process: RenderProcess) -> int:
    deadline = time.monotonic() + 10
    while process.pid is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return process.pid


def rendering(process: RenderProcess) -> tuple[RenderJob, int, list[str]]:
    """A render begun, its parts handed over but not ended: (job, the child's pid, what
    on_died is told)."""
    died: list[str] = []
    process.on_died = died.append
    job = RenderJob()
    process.begin(job)
    job.put(blobs(UP))
    return job, wait_for_child(process), died


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


@pytest.fixture(params=[False, True], ids=["socket", "pipe"])
def process(request):
    """The render process with either transport: a stream socket (Linux, macOS), a pipe (Windows)."""
    p = RenderProcess(RENDER, pipe=request.param)
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


def test_a_part_that_is_not_marshal_data_fails_its_render_only(process):
    """The child reads the rest of a render whose part it cannot read: the next is in step."""
    job = RenderJob()
    process.begin(job)
    job.put([b"\xff", *blobs([("up", [('monitor="vp1",target="stale"', 1)])])])
    job.end()
    with pytest.raises(RenderFailed, match="ValueError"):
        job.answer.result(10)
    for _ in range(2):
        assert b"".join(render(process, UP)) == b"".join(expose_parts(UP))


def test_a_scrape_that_gives_up_during_the_copy_leaves_the_child_alone(process):
    """The loop was slow, not the child: the render ends with what it has, for nobody, and
    the same child renders the next."""
    job, child, died = rendering(process)  # and the copy goes on...
    job.answer.cancel()  # ... past the scrape's timeout
    assert b"".join(render(process, UP)) == b"".join(expose_parts(UP))
    assert process.pid == child and died == [] and process.died == 0


def test_close_during_a_render_tells_of_no_death():
    process = RenderProcess(RENDER)
    job, child, died = rendering(process)
    os.kill(child, signal.SIGSTOP)  # a render in the child that will not end by itself
    job.end()
    time.sleep(0.2)
    process.close()
    with pytest.raises(RenderClosed):
        job.answer.result(5)
    assert gone(child, 5)
    time.sleep(0.2)  # the I/O thread has reaped it
    assert died == [] and process.died == 0


def test_a_copy_that_gives_up_fails_its_render_only(process):
    with pytest.raises(TimeoutError):
        render(process, UP, fail=TimeoutError("the scrape gave up"))
    assert b"target_up" in b"".join(render(process, UP))


def test_a_child_killed_while_rendering_fails_that_render_and_is_started_again(process):
    job, first, died = rendering(process)
    os.kill(first, signal.SIGKILL)
    time.sleep(0.1)
    job.end()
    with pytest.raises(RenderDied, match="ended while rendering"):
        job.answer.result(10)
    assert died == ["the metrics render process ended while rendering (exit status -9)"] and process.died == 1
    assert b"target_up" in b"".join(render(process, UP))
    assert process.pid not in (None, first) and process.died == 0


def test_a_render_that_outlives_its_scrape_kills_a_stuck_child(process):
    """A scrape that gives up (its timeout) while the child renders: the child is likely
    stuck (here: stopped), so it is killed, said, and the next render has a new one."""
    job, child, died = rendering(process)
    os.kill(child, signal.SIGSTOP)
    job.end()
    time.sleep(0.2)
    job.answer.cancel()  # as the HTTP server's wait_for does at RENDER_TIMEOUT_S
    assert gone(child, 5)
    assert b"".join(render(process, UP)) == b"".join(expose_parts(UP))
    assert died == ["the metrics render process ended while rendering (killed: its scrape gave up waiting for it)"]


def test_a_child_that_cannot_run_fails_each_render_and_says_so():
    """A child that starts and dies at once (here: its render function cannot be imported):
    each render fails and says why, never a hang."""
    died = []
    process = RenderProcess("stamp_suite.no_such_module:render", on_died=died.append)
    try:
        for _ in range(2):
            with pytest.raises(RenderDied, match="exit status 1"):
                render(process, UP)
    finally:
        process.close()
    assert len(died) == 2 and process.died == 2


def test_close_right_after_a_begin_returns_and_fails_the_render(caplog):
    """The I/O thread may be anywhere (taking the lock, starting the child, waiting for the
    loop's blobs): close() neither waits for it nor leaves the render pending, and a render
    that never ran is no error in the log."""
    for _ in range(10):
        process = RenderProcess(RENDER)
        jobs = [RenderJob(), RenderJob()]  # the second waits behind the first
        for job in jobs:
            process.begin(job)
        closer = threading.Thread(target=process.close)
        closer.start()
        closer.join(STOP_WAIT_S + 1)
        assert not closer.is_alive()
        for job in jobs:
            with pytest.raises(RenderClosed):
                job.answer.result(5)
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text


def test_close_ends_a_render_that_waits_for_its_copy_and_the_child():
    """A monitor that stops while a copy is under way: the render fails at once, the child
    leaves, and close() does not wait for blobs that will not come."""
    process = RenderProcess(RENDER)
    job, child, _ = rendering(process)  # and never ended
    started = time.monotonic()
    process.close()
    assert time.monotonic() - started < STOP_WAIT_S + 1
    with pytest.raises(RenderClosed):
        job.answer.result(5)
    assert gone(child, 5)  # killed, and reaped by the I/O thread


class _Monitor:
    """What MonitorExposition reads of a monitor, with a loop of its own stepping its work."""

    name = "vp1"

    def __init__(self) -> None:
        from stamp_suite.observability.metrics import DELAY_BUCKETS_S, BucketHistogram, SenderMetrics

        self.metrics = SenderMetrics(("monitor", "target"))
        self.schedule_error = BucketHistogram(DELAY_BUCKETS_S)
        self.closed = []
        for i, target in enumerate(("a", "b")):  # a session each with a reply, and a closed window
            stats = SessionStats()
            hook = self.metrics.add_session((self.name, target), stats, Availability(3 * NS))
            for ev in (Sent(0, T1, b""), Reply(sample(0, 100 + 50 * i))):
                stats.on_event(ev)
                hook(ev)
            self.closed.append((target, ClosedWindow(10 * 10**9, 1, False, stats)))
        self.logged: list[str] = []
        self.work = SlicedWork()
        self.driver = self
        self.discovery = self
        self.reloads = (2, 1)  # applied, failed
        self.unresolved = {"c": None}
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

    def dropped_unread(self) -> int:
        return 5

    def target_sources(self) -> tuple[int, ...]:
        return 1, 2, 0, 0  # from the file, file_sd, http_sd, dns_sd

    def timestamping(self) -> tuple[int, int]:
        return 2, 1  # kernel, user

    def failures(self) -> tuple[int, int]:  # as its discovery: http_sd, dns_sd
        return 4, 0

    def windows(self):
        return iter(self.closed)

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
    assert b'stamp_monitor_dropped_unread_total{monitor="vp1"} 5\n' in text
    assert b'stamp_monitor_reloads_total{monitor="vp1",result="applied"} 2\n' in text
    assert b'stamp_monitor_reloads_total{monitor="vp1",result="failed"} 1\n' in text
    assert b'stamp_monitor_unresolved_targets{monitor="vp1"} 1\n' in text
    assert b'stamp_monitor_targets{monitor="vp1",source="file_sd"} 2\n' in text
    assert b'stamp_monitor_timestamping{monitor="vp1",source="user"} 1\n' in text
    assert b'stamp_monitor_sd_failures_total{monitor="vp1",source="http_sd"} 4\n' in text
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
    assert b'stamp_monitor_window_rtt_p50_seconds{monitor="vp1",target="b",window="10s"} 0.00015\n' in text
    assert b'stamp_sender_rtt_seconds_count{monitor="vp1",target="a"} 1\n' in text
    assert monitor.logged == []


def test_after_three_deaths_in_a_row_the_loop_formats_and_says_so():
    from stamp_suite.monitor.exposition import MAX_DEATHS

    monitor = _Monitor()
    exposition = MonitorExposition(monitor)
    exposition.process = RenderProcess("stamp_suite.no_such_module:render", on_died=exposition._died)
    try:
        for _ in range(MAX_DEATHS):
            with pytest.raises(RenderDied):
                exposition.exposition_future().result(10)
        text = b"".join(exposition.exposition_future().result(10))
    finally:
        monitor.running = False
        exposition.close()
    assert b'stamp_sender_rtt_seconds_count{monitor="vp1",target="a"} 1\n' in text
    assert exposition.process is None
    assert monitor.logged[:MAX_DEATHS - 1] == ["metrics: the metrics render process ended while rendering (exit "
                                               "status 1); the next scrape starts another"] * (MAX_DEATHS - 1)
    assert monitor.logged[-1].endswith(f"(exit status 1), {MAX_DEATHS} times in a row; the sending loop formats "
                                       "/metrics from now on, which makes a scrape of many targets slower")


def test_a_finished_render_keeps_nothing_alive():
    """No reference cycle holds a render (and its text: 88 MB at 10,000 targets) until the
    next full garbage collection: with the collector off, nothing of it is left."""
    import gc

    monitor = _Monitor()
    exposition = MonitorExposition(monitor)
    gc.collect()
    gc.disable()
    # jobs of earlier tests in this worker that their render processes' threads still hold
    earlier = {id(o) for o in gc.get_objects() if isinstance(o, RenderJob)}

    def ours() -> list:
        return [o for o in gc.get_objects() if isinstance(o, RenderJob) and id(o) not in earlier]
    try:
        for _ in range(3):
            assert b"target_up" in b"".join(exposition.exposition_future().result(10))
        deadline = time.monotonic() + 5  # the I/O thread lets go of its last one
        while ours() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not ours()
    finally:
        gc.enable()
        monitor.running = False
        exposition.close()
