"""``stamp-suite -r HOST``: one Session-Sender session, reported as it goes and at the end."""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..assembly import open_session, run_session
from ..config import Settings
from ..say import note, say
from ..net.clock import ClockState, ClockWatcher, read_clock_state
from ..net.signals import StopRequest
from ..net.udp import format_address
from ..sender.driver import SenderSession
from ..sender.output import SenderOutput
from ..sender.report import remote_label
from ..sender.stats import SessionStats
from ..sender.warnings import EarlyWarnings
from . import plot

PROG = "stamp-suite"


def session_info(s: Settings, session: SenderSession, clock: ClockState) -> dict[str, Any]:
    """The summary's "session" object."""
    ep = session.endpoint
    name = s.remote()[0]
    return {"remote": format_address(session.destination), "local": format_address(ep.local),
            **({"remote_name": name} if name != session.destination[0] else {}),
            "auth_mode": "authenticated" if s.authenticated else "open", "ssid": s.ssid or 0,
            "clock_source": s.clock_source, "count": s.count, "send_delay_ms": s.send_delay,
            "timestamping": "kernel" if ep.caps.kernel_rx_timestamp else "user-space", "clock": clock.how}


def run(s: Settings, stop: StopRequest, destination: tuple[str, int] | None = None) -> int:
    if s.plot_output:
        plot.check_available()  # before the run, not after it
    clock = read_clock_state(s.tai_offset)
    session, stats = open_session(s, clock, destination=destination)
    info = session_info(s, session, clock)
    output = SenderOutput(s, stats, info)
    where = remote_label(info)
    session.consumers += [output, EarlyWarnings(where, s.timeout)]

    def banner() -> None:
        if s.output_format == "text" and not s.quiet:
            pace = f"with {s.window} in flight" if s.window else f"every {s.send_delay:g} ms"
            howmany = "packets" if s.count == 0 else f"{s.count} packets"
            until = " until interrupted" if s.count == 0 and not s.max_runtime else ""
            limit = f" for {s.max_runtime:g} s" if s.max_runtime else ""
            print(f"{PROG} {__version__} sending to {where} from {info['local']}: {howmany} {pace}{until}{limit}, "
                  f"{info['auth_mode']} mode", flush=True)
        if not s.quiet:
            for line in session.endpoint.caps.notes():
                note(line)
    duration_s = run_session(s, session, stats, stop,
                             clock=ClockWatcher(clock, read=lambda: read_clock_state(s.tai_offset), log=note),
                             every_second=output.show_progress if output.progress else None, on_start=banner)
    summary = output.finish(duration_s)
    if s.plot_output:
        plot.write(s, output.records or [], f"STAMP {info['remote']}", summary, info)
    return exit_status(stats, s)


def exit_status(stats: SessionStats, s: Settings) -> int:
    if stats.received or stats.late:
        return 0
    if stats.refused:
        why = f"ICMP port unreachable ({stats.refused}x): is a reflector listening there?"
    elif stats.hmac_failures:
        why = f"{stats.hmac_failures} replies failed HMAC verification: wrong key or mode (-A)?"
    elif stats.foreign or stats.malformed:
        why = f"{stats.foreign} foreign and {stats.malformed} malformed replies, none matching our packets"
    elif stats.sent == 0:
        why = "nothing was sent"
    elif s.authenticated:
        why = ("timed out; a reflector drops authenticated packets silently when their HMAC fails or when "
               "it runs in open mode: check that both ends use -A A and the same key")
    else:
        why = "timed out: no reply within --timeout"
    say(f"{PROG}: no replies: {why}")
    return 1
