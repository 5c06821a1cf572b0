"""The example in docs/api.md runs as written."""

import re
from pathlib import Path

import pytest
from helpers import free_tcp_port, scrape, wait_for

from stamp_suite.api import run_session
from stamp_suite.config import ConfigError

DOC = Path(__file__).parents[2] / "docs" / "api.md"


def test_api_doc_example_runs():
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    exec(compile(code, str(DOC), "exec"), {})


def test_api_validates_settings():
    with pytest.raises(ConfigError):
        run_session("127.0.0.1", 9, dscp=99)


def test_api_honours_every_sender_setting():
    """The API runs the CLI's own session: capacity mode, metrics, the address family."""
    import threading

    from stamp_suite.api import start_reflector
    with start_reflector() as refl:
        result = run_session(*refl.address, count=200, window=8, timeout=1)
        assert result.received == 200 and result.summary["packets"]["lost"] == 0
        port = free_tcp_port()
        seen = {}

        def scrape_during_run():
            import time
            time.sleep(0.3)
            seen.update(scrape(port))
        t = threading.Thread(target=scrape_during_run)
        t.start()
        run_session(*refl.address, count=20, send_delay=30, metrics=True, metrics_addr=f"127.0.0.1:{port}")
        t.join()
        labels = (("remote", f"127.0.0.1:{refl.address[1]}"), ("ssid", "0"))
        assert seen[("stamp_sender_packets_sent_total", labels)] > 3
    with pytest.raises(ConfigError, match="IPv6 is asked for"):
        run_session("127.0.0.1", 862, force_ipv6=True)
    with start_reflector(local_addr="::1") as refl6:
        result = run_session("::1", refl6.address[1], count=3, send_delay=5, force_ipv6=True)
        assert result.received == 3


def test_one_definition_of_lost_in_the_api_and_the_summary():
    from stamp_suite.api import start_reflector
    with start_reflector() as refl:
        refl._server.stop()  # nobody answers any more, but the port stays bound
        refl._thread.join(2)
        result = run_session(*refl.address, count=4, send_delay=5, timeout=0.2)
    assert result.lost == [0, 1, 2, 3] and result.summary["packets"]["lost"] == 4 and result.received == 0


def test_api_errors_are_one_line_and_the_run_settings_hold():
    """Review findings: a wrong type or name is a ConfigError naming the setting; max_runtime
    ends an open-ended run; a cancelled async run stops its thread."""
    import asyncio
    import threading
    import time

    from stamp_suite.api import run_session_async, start_reflector
    with pytest.raises(ConfigError, match="setting count: expected an integer, got a string"):
        run_session("127.0.0.1", 9, count="3")
    with pytest.raises(ConfigError, match="unknown setting 'R'"):
        run_session("127.0.0.1", 9, R=True)
    with pytest.raises(ConfigError, match="setting workers is a reflector setting"):
        run_session("127.0.0.1", 9, workers=2)
    with pytest.raises(ConfigError, match="runs one worker"):
        start_reflector(workers=2)
    with pytest.raises(ConfigError, match="exports nothing"):
        start_reflector(metrics=True)
    with start_reflector() as refl:
        t0 = time.monotonic()
        result = run_session(*refl.address, count=0, send_delay=50, max_runtime=0.5, timeout=0.5)
        assert 0.4 < time.monotonic() - t0 < 2 and result.sent == 10 and result.summary["packets"]["lost"] == 0

        async def cancel_soon():
            task = asyncio.create_task(run_session_async(*refl.address, count=0, send_delay=20))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        before = threading.active_count()
        asyncio.run(cancel_soon())
        assert wait_for(lambda: threading.active_count() <= before), "the session's thread did not end"


def test_an_icmp_error_other_than_port_unreachable_is_counted_and_the_run_goes_on(monkeypatch, sender_io):
    """A firewall's REJECT (ICMP host prohibited) reaches the socket as EHOSTUNREACH: one
    target's error, counted, never the end of the run (or of a monitor's other targets)."""
    import errno

    from stamp_suite.api import start_reflector
    from stamp_suite.net.udp import UdpEndpoint
    read = "recv_batch" if sender_io == "batched" else "recv"
    real_read, calls = getattr(UdpEndpoint, read), []

    def failing_read(self, *args, **kwargs):
        if self.local[1] != refl.address[1]:  # the sender's socket, not the reflector's
            calls.append(1)
            if len(calls) in (2, 4):
                raise OSError(errno.EHOSTUNREACH, "No route to host")
        return real_read(self, *args, **kwargs)
    with start_reflector() as refl:
        monkeypatch.setattr(UdpEndpoint, read, failing_read)
        result = run_session(*refl.address, count=5, send_delay=20, timeout=0.5)
    assert result.sent == 5 and result.summary["packets"]["received"] == 5
    assert result.summary["packets"]["refused"] == 2
