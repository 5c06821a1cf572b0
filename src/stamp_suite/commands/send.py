"""``stamp-suite -r HOST``: one Session-Sender session, reported as it goes and at the end."""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..args import PROG
from ..assembly import open_session, run_sessions
from ..config import ConfigError, OutputFormat, Settings, UnresolvedName
from ..net.clock import ClockState, ClockWatcher, read_clock_state
from ..net.resolve import format_address
from ..net.signals import StopRequest
from ..say import note, say
from ..sender.driver import Probe
from ..sender.output import SenderOutput
from ..sender.report import remote_label, summary_table
from ..sender.stats import SessionStats
from ..sender.warnings import EarlyWarnings
from . import exports_text, plot


def session_info(s: Settings, session: Probe, clock: ClockState) -> dict[str, Any]:
    """The summary's "session" object."""
    ep = session.endpoint
    name = s.sender.remote()[0]
    return {"remote": format_address(session.destination), "local": format_address(ep.local),
            **({"remote_name": name} if name != session.destination[0] else {}),
            "auth_mode": "authenticated" if s.common.authenticated else "open", "ssid": s.sender.ssid or 0,
            "clock_source": s.common.clock_source, "count": s.sender.count,
            # capacity mode has no pace: its window instead (send_delay_ms null, not the unused default)
            "send_delay_ms": None if s.sender.window else s.sender.send_delay,
            **({"window": s.sender.window} if s.sender.window else {}),
            "timestamping": "kernel" if ep.caps.kernel_rx_timestamp else "user-space", "clock": clock.how}


def run(s: Settings, stop: StopRequest) -> int:
    return run_all([s], stop)


Run = tuple[Probe, SessionStats, SenderOutput]


def run_all(targets: list[Settings], stop: StopRequest) -> int:
    """One session per target (the settings differ only in the reflector), in one driver."""
    s = targets[0]
    if s.output.plot_output:
        plot.check_available(s.output.plot_output, s.output.plot_html)  # before the run, not after it
    clock = read_clock_state(s.common.tai_offset)
    runs, unresolved = _open_all(targets, clock)

    def progress() -> None:  # the line on a terminal, once a second
        for _, _, output in runs:
            output.show_progress()
    stop.started()
    duration_s = run_sessions(s, [(session, stats) for session, stats, _ in runs], stop,
                              clock=ClockWatcher(clock, read=lambda: read_clock_state(s.common.tai_offset), log=note),
                              every_second=progress if runs[0][2].progress else None, on_start=lambda: _banner(s, runs))
    summaries = [output.finish(duration_s) for _, _, output in runs]
    if runs[0][2].in_table:
        print(summary_table([(output.target or "", d, output.session) for (_, _, output), d in zip(runs, summaries)]),
              end="")
    if s.output.plot_output:
        output, summary = runs[0][2], summaries[0]
        plot.write(s, output.records or [], f"STAMP {output.session['remote']}", summary, output.session)
    statuses = [exit_status(stats, output.s, output.target) for _, stats, output in runs]
    return max(statuses + [2] * bool(unresolved))  # fping's: 2 when a name had no address


def _open_all(targets: list[Settings], clock: ClockState) -> tuple[list[Run], int]:
    """A session and its outputs for each target, and how many names had no address (among
    several: said and skipped, as fping does; alone: the error it is)."""
    several = len(targets) > 1
    runs: list[Run] = []
    unresolved = 0
    try:
        for t in targets:
            try:
                session, stats = open_session(t, clock)
            except UnresolvedName as exc:
                if not several:
                    raise
                say(f"{PROG}: {exc}: not measured")
                unresolved += 1
                continue
            info = session_info(t, session, clock)
            where = remote_label(info)
            output = SenderOutput(t, stats, info, target=where if several else None)
            session.consumers += [output, EarlyWarnings(where, t.sender.timeout, ssid=t.sender.ssid or 0,
                                                        window=t.sender.window or 0,
                                                        receive_buffer=session.endpoint.receive_buffer(),
                                                        interval_ns=session.engine.config.interval_ns)]
            runs.append((session, stats, output))
    except BaseException:
        for session, _, _ in runs:
            session.endpoint.close()
        raise
    if not runs:
        raise ConfigError("no reflector could be resolved")
    return runs, unresolved


def _banner(s: Settings, runs: list[Run]) -> None:
    """What is about to be measured, how and for how long (text output, not -q); the socket's notes."""
    if s.output.output_format is OutputFormat.TEXT and not s.output.quiet:
        several = len(runs) > 1
        pace = f"with {s.sender.window} in flight" if s.sender.window else f"every {s.sender.send_delay:g} ms"
        n = s.sender.count
        howmany = "packets" if n == 0 else "1 packet" if n == 1 else f"{n} packets"
        until = " until interrupted" if n == 0 and not s.sender.max_runtime else ""
        limit = f" for {s.sender.max_runtime:g} s" if s.sender.max_runtime else _lasting(s)
        first = runs[0][2].session
        where = (f"{len(runs)} reflectors ({', '.join(o.target or '' for _, _, o in runs)})" if several
                 else f"{remote_label(first)} from {first['local']}")
        each = " each" if several else ""
        print(f"{PROG} {__version__} sending to {where}: {howmany} {pace}{each}{until}{limit}, "
              f"{first['auth_mode']} mode{exports_text(s)}", flush=True)
    if not s.output.quiet:
        for line in runs[0][0].endpoint.caps.notes():
            note(line)


def _lasting(s: Settings) -> str:
    """How long a paced run will take, when it is long enough for someone to wonder (the
    default, 1000 packets a second apart, takes a quarter of an hour)."""
    if s.sender.window or not s.sender.count:
        return ""
    seconds = (s.sender.count - 1) * s.sender.send_delay / 1000 + s.sender.timeout
    if seconds < 10:
        return ""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return " (about " + (f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s" if minutes
                         else f"{secs} s") + ")"


def exit_status(stats: SessionStats, s: Settings, target: str | None = None) -> int:
    if stats.received or stats.late:
        return 0
    if stats.refused:
        why = (f"ICMP port unreachable ({stats.refused}x): is a reflector listening there?"
               if stats.last_icmp_error == "port unreachable" else
               f"ICMP errors ({stats.refused}x, the last: {stats.last_icmp_error}): is the host reachable?")
    elif stats.hmac_failures:
        why = f"{stats.hmac_failures} replies failed HMAC verification: {stats.last_hmac_failure}"
    elif stats.foreign or stats.malformed:
        why = f"{stats.foreign} foreign and {stats.malformed} malformed replies, none matching our packets"
    elif stats.sent == 0:
        why = "nothing was sent"
    elif s.common.authenticated:
        why = ("timed out; a reflector drops authenticated packets silently when their HMAC fails or when "
               "it runs in open mode: check that both ends use -A A and the same key")
    else:
        why = ("timed out: no reply within --timeout (a reflector in authenticated mode drops open packets "
               "without a word: -A A and its key, if so)")
    say(f"{PROG}: no replies{f' from {target}' if target else ''}: {why}")
    return 1
