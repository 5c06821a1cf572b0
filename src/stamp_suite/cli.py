"""Command line: ``stamp-suite`` sends, ``stamp-suite -i`` reflects.

Flags, short forms and defaults follow the Rust stamp-suite so its users can switch
without relearning.  Every error is one line on stderr: exit 2 for bad settings, 1 for
a runtime failure (port in use, no replies), 0 for success.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .build import load_keys, reflector_config, sender_config
from .config import ConfigError, Settings, build_settings
from .endpoints import open_reflector_endpoint, open_sender_endpoint
from .net.clock import ClockState, read_clock_state
from .net.udp import Capabilities, SocketSetupError, UdpEndpoint, detect_capabilities, format_address
from .reflector.engine import Reflector
from .net import signals
from .reflector.server import ReflectorServer
from .sender.engine import ReplyEvent, SessionSender
from .sender.report import CsvWriter, ms, packet_text, sample_record, summary_json, summary_text
from .sender.plot import PlotError, load_records, render_html, render_png
from .sender.runner import RunResult, SenderRunner
from .sender.stats import SessionStats

PROG = "stamp-suite"


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints the usage too)
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x, 0) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None


def _str_list(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _auth_mode(text: str) -> str:
    return text.upper()


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=PROG, description="STAMP (RFC 8762/8972/9503/9534) Session-Sender; with -i the "
                      "Session-Reflector. 'stamp-suite monitor --config FILE' measures many reflectors "
                      "continuously.", argument_default=argparse.SUPPRESS, add_help=False)
    g = p.add_argument_group("general")
    g.add_argument("-h", "--help", action="help", help="show this help and exit")
    g.add_argument("-V", "--version", action="store_true", dest="show_version",
                   help="print the version (with --verbose: the platform capabilities) and exit")
    g.add_argument("-v", "--verbose", action="store_true", help="more detail at start-up")
    g.add_argument("--config", metavar="FILE", help="TOML settings file (defaults < file < flags)")
    g.add_argument("--self-test", action="store_true",
                   help="start a reflector on loopback inside this process and measure it")
    g.add_argument("-i", "--is-reflector", action="store_true", help="run as Session-Reflector")

    a = p.add_argument_group("addresses")
    a.add_argument("-r", "--remote-addr", help="reflector address [default: 0.0.0.0, this host]")
    a.add_argument("-S", "--local-addr", help="local address to bind [default: reflector :: dual-stack, "
                   "sender the wildcard of the remote's family]")
    a.add_argument("-p", "--remote-port", type=_int, help="reflector UDP port [default: 862]")
    a.add_argument("-o", "--local-port", type=_int, help="local UDP port [default: reflector 862, sender ephemeral]")
    a.add_argument("-4", action="store_true", dest="force_ipv4", help="IPv4 only")
    a.add_argument("-6", action="store_true", dest="force_ipv6", help="IPv6 only")

    t = p.add_argument_group("test session")
    t.add_argument("-K", "--clock-source", type=str.upper, help="timestamp format NTP or PTP [default: NTP]")
    t.add_argument("-d", "--send-delay", type=float, help="ms between packets, fractions allowed [default: 1000]")
    t.add_argument("-c", "--count", type=_int, help="packets to send, 0 = until interrupted [default: 1000]")
    t.add_argument("-L", "--timeout", type=float, help="seconds to wait for a reply [default: 5]")
    t.add_argument("-A", "--auth-mode", type=_auth_mode, help="A = authenticated, O = open [default: O]")
    t.add_argument("-R", action="store_true", dest="print_stats", help="print every packet")
    t.add_argument("--window", type=_int, metavar="N",
                   help="capacity mode: keep N packets in flight, the next sent as each reply arrives; "
                        "reports replies/s (ignores --send-delay)")
    t.add_argument("--ssid", type=_int, help="STAMP Session Identifier 1..65535 (RFC 8972)")
    t.add_argument("--padding", type=_int, help="Extra Padding TLV of this many octets")
    t.add_argument("--dscp", type=_int, help="DSCP of test packets (and requested for replies with --cos)")
    t.add_argument("--ecn", type=_int, help="ECN of test packets 0..3")
    t.add_argument("--output-format", choices=["text", "json", "csv"], help="report format [default: text]")
    t.add_argument("--report-interval", type=float, help="interim summary every N seconds (0 = off)")
    t.add_argument("--plot", metavar="JSONL", help="plot a run saved with --output-format json -R, then exit")
    t.add_argument("--plot-output", metavar="PNG", help="write a PNG plot of this run (or of --plot)")
    t.add_argument("--plot-html", metavar="HTML", help="also write a self-contained HTML page with the plot")

    c = p.add_argument_group("clock")
    c.add_argument("--timestamping", choices=["auto", "kernel", "user"],
                   help="receive timestamps from the kernel or user space [default: auto]")
    c.add_argument("--tai-offset", type=_int, help="TAI - UTC seconds for PTP timestamps [default: kernel's or 37]")
    c.add_argument("--clock-synchronized", action="store_true", default=argparse.SUPPRESS,
                   help="state that the clock is synchronised (S bit), overriding what the kernel says")
    c.add_argument("--error-scale", type=_int, help="Error Estimate Scale 0..63 [default: measured]")
    c.add_argument("--error-multiplier", type=_int, help="Error Estimate Multiplier 1..255 [default: measured]")

    r = p.add_argument_group("reflector")
    r.add_argument("--stateful-reflector", action="store_true", help="number replies per session (RFC 8762 §4)")
    r.add_argument("--session-timeout", type=_int, help="seconds before an idle session is forgotten [default: 300]")
    r.add_argument("--max-sessions", type=_int, help="session table size, oldest evicted [default: 100000]")
    r.add_argument("--tlv-mode", choices=["echo", "ignore"], help="process TLVs, or copy them untouched")
    r.add_argument("--verify-tlv-hmac", action="store_true", help="require a valid HMAC TLV in open mode too")
    r.add_argument("--allowed-ssids", type=_int_list, help="only serve these SSIDs (comma-separated)")
    r.add_argument("--cos-allowed-dscp", type=_int_list, help="DSCP values a CoS TLV may request [default: all]")
    r.add_argument("--return-address-allow", type=_str_list,
                   help="prefixes a Return Path may redirect replies to (open mode) [default: none]")
    r.add_argument("--reflector-member-link-id", type=_int, help="member link ID for RFC 9534 micro-sessions")
    r.add_argument("--workers", type=_int,
                   help="reflector processes sharing the port, each sender address served by one of them; "
                        "limits and counters are the reflector's total [default: one per CPU on Linux]")
    r.add_argument("--drop-short-packets", action="store_true",
                   help="hardened profile: no reply to packets shorter than 44 octets (by default they get a "
                        "44-octet base packet, RFC 8762 §4.6, for TWAMP-Light senders)")
    r.add_argument("--answer-short-packets", action="store_true", help=argparse.SUPPRESS)  # the default now
    r.add_argument("--accept-nonzero-mbz", action="store_true",
                   help="answer packets whose MBZ octets hold a Receive Timestamp or Sender TTL (TWAMP-Light "
                        "senders with random padding), except from port 862 or ours; weakens the loop guard")
    r.add_argument("--busy-poll", type=_int, metavar="USEC",
                   help="keep polling this long after each packet instead of sleeping: lower residence time "
                        "(T3 - T2) for a core's worth of CPU while traffic flows [default: 0]")
    r.add_argument("--max-pps", type=float, help="packets/s answered per source address (0 = no limit)")
    r.add_argument("--max-pps-burst", type=float, help="burst allowed above --max-pps [default: one second's worth]")
    r.add_argument("--accept-zero-multiplier", action="store_true",
                   help="answer packets whose Error Estimate Multiplier is 0 (RFC 4656 says discard)")

    x = p.add_argument_group("TLVs requested by the sender")
    x.add_argument("--cos", action="store_true", help="Class of Service TLV: DSCP/ECN seen at the reflector")
    x.add_argument("--location", action="store_true", help="Location TLV: addresses and ports the reflector saw")
    x.add_argument("--timestamp-info", action="store_true", help="Timestamp Information TLV")
    x.add_argument("--direct-measurement", action="store_true", help="Direct Measurement TLV (counters)")
    x.add_argument("--follow-up-telemetry", action="store_true", help="Follow-Up Telemetry TLV")
    x.add_argument("--access-report", type=_int, metavar="ID", help="Access Report TLV with this Access ID")
    x.add_argument("--access-return-code", type=_int, help="Access Report Return Code [default: 1]")
    x.add_argument("--access-report-timer", type=float, metavar="SECONDS",
                   help="retransmit the Access Report when no reply carried it back this long [default: 3]")
    x.add_argument("--access-report-retries", type=_int, help="Access Report retransmissions before giving up "
                   "[default: 4]")
    x.add_argument("--hmac-tlv", action="store_true", help="add an HMAC TLV in open mode")
    x.add_argument("--dest-node-addr", help="Destination Node Address TLV (needs --ssid)")
    x.add_argument("--return-path-cc", type=_int, help="Return Path Control Code: 0 no reply, 1 same link")
    x.add_argument("--return-address", help="Return Path: send the reply to this address")
    x.add_argument("--return-sr-mpls-labels", type=_int_list, help="Return Path SR-MPLS labels, comma-separated")
    x.add_argument("--return-srv6-sids", type=_str_list, help="Return Path SRv6 SIDs, comma-separated")
    x.add_argument("--micro-session-id", type=_int, help="Micro-session ID TLV: sender member link ID")

    k = p.add_argument_group("keys")
    k.add_argument("--hmac-key", help="HMAC key in hex (at least 16 octets)")
    k.add_argument("--hmac-key-file", help="file holding the HMAC key in hex (mode 0600)")
    k.add_argument("--hmac-key-dir", help="reflector: directory of per-SSID key files named <SSID>")

    o = p.add_argument_group("observability")
    o.add_argument("--metrics", action="store_true", help="serve Prometheus metrics")
    o.add_argument("--metrics-addr", help="metrics address:port [default: 127.0.0.1:9090]")
    o.add_argument("--snmp", action="store_true", help="AgentX sub-agent for net-snmp")
    o.add_argument("--snmp-socket", help="AgentX master socket [default: /var/agentx/master]")
    return p


# ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["monitor"]:
        return _guarded(lambda: __import__("stamp_suite.monitor", fromlist=["main"]).main(argv[1:]))
    try:
        ns = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a parse error already printed
        return int(exc.code or 0)
    flags: dict[str, Any] = vars(ns)
    show_version = flags.pop("show_version", False)
    config_path = flags.pop("config", None)
    if show_version:
        return _version(flags.get("verbose", False))

    def run() -> int:
        settings = build_settings(flags, config_path)
        if settings.plot:
            return _plot_saved(settings)
        if settings.self_test:
            return _self_test(settings, flags)
        if settings.is_reflector:
            from .commands import reflect
            return reflect.run(settings, signals.STOP)
        return _run_sender(settings)
    return _guarded(run)


def _guarded(run) -> int:
    """Run a command; every failure is one line on stderr and an exit status, never a traceback."""
    try:
        return run()
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except SocketSetupError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except PlotError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _quiet_stdout()
        print(f"{PROG}: output closed (broken pipe); stopped", file=sys.stderr)
        return 1
    except OSError as exc:  # a full disk, an I/O error on the output: one line, never a traceback
        _quiet_stdout()
        print(f"{PROG}: error: {exc.strerror or exc}"
              + (f" ({exc.filename})" if getattr(exc, "filename", None) else ""), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _quiet_stdout() -> None:
    """stdout was closed under us (a pipe reader went away): stop writing to it silently."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


def _version(verbose: bool) -> int:
    print(f"{PROG} {__version__} (Python {sys.version.split()[0]}, {sys.platform})")
    if verbose:
        for fam, name in ((socket.AF_INET, "IPv4"), (socket.AF_INET6, "IPv6")):
            try:
                caps = detect_capabilities(fam)
            except OSError:
                print(f"{name}: not available")
                continue
            print(f"{name} {caps.describe()}")
            if caps.missing():
                print(f"{name} missing: {', '.join(caps.missing())}")
        print(read_clock_state().how)
    return 0


def _install_sigterm() -> None:
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
    if signals.STOP.requested:
        raise KeyboardInterrupt


# -- sender ------------------------------------------------------------------------------
def _destination(s: Settings) -> tuple[str, int]:
    host = s.remote_addr
    if s.force_ipv6 and ":" not in host:
        host = "::ffff:" + host if host != "0.0.0.0" else "::1"
    return host, s.remote_port


class _Output:
    """Writes per-packet records and the summary in the chosen format."""

    def __init__(self, s: Settings, session: dict[str, Any]) -> None:
        self.s = s
        self.session = session
        self.csv = CsvWriter(sys.stdout) if s.output_format == "csv" else None
        self.records: list[dict[str, Any]] | None = [] if s.plot_output else None

    def event(self, ev: ReplyEvent) -> None:
        s = self.s
        if self.records is not None and len(self.records) < PLOT_MAX_POINTS:
            self.records.append(sample_record(ev.kind, ev.sample, ev.detail))
        if self.csv is not None:
            self.csv.row(sample_record(ev.kind, ev.sample, ev.detail))
        elif not s.print_stats:
            return
        elif s.output_format == "json":
            tlv = ev.sample.tlv if ev.sample is not None else {}
            print(json.dumps({"type": "packet", **sample_record(ev.kind, ev.sample, ev.detail), "tlv": tlv}))
        else:
            print(packet_text(ev))
        sys.stdout.flush()

    def finish(self, result: RunResult) -> None:
        self.session["duration_s"] = result.duration_s
        if self.s.window:
            self.session["capacity_replies_per_s"] = result.stats.received / max(result.duration_s, 1e-9)
        summary = result.stats.to_dict()
        lost = [sample_record("lost", None, seq=seq, t1_ns=t1) for seq, t1 in result.unanswered]
        if self.csv is not None:
            for rec in lost:
                self.csv.row(rec)
            sys.stdout.flush()
            print(summary_text(summary, self.session), end="", file=sys.stderr)
        elif self.s.output_format == "json":
            if self.s.print_stats:
                for rec in lost:
                    print(json.dumps({"type": "packet", **rec, "tlv": {}}))
            print(summary_json(summary, self.session))
        else:
            if self.s.print_stats:
                print()
            print(summary_text(summary, self.session), end="")
            if self.s.window:
                print(f"\nCapacity: {self.session['capacity_replies_per_s']:,.0f} replies/s with {self.s.window} "
                      f"packets in flight, loss {(summary['packets']['loss_ratio'] or 0):.3%}")
        sys.stdout.flush()
        if self.records is not None:
            _write_plot(self.s, self.records + lost, f"STAMP {self.session['remote']}",
                        summary_text(summary, self.session))


PLOT_MAX_POINTS = 1_000_000


def _write_plot(s: Settings, records: list[dict[str, Any]], title: str, text: str = "") -> None:
    assert s.plot_output is not None
    render_png(records, s.plot_output, title)
    if s.plot_html:
        render_html(s.plot_output, s.plot_html, title, text)


def _plot_saved(s: Settings) -> int:
    from dataclasses import replace
    records = load_records(s.plot)
    out = s.plot_output or str(Path(s.plot).with_suffix(".png"))
    _write_plot(replace(s, plot_output=out), records, f"STAMP run {Path(s.plot).name}")
    print(f"wrote {out}" + (f" and {s.plot_html}" if s.plot_html else ""))
    return 0


def _run_sender(s: Settings, dest: tuple[str, int] | None = None) -> int:
    keys = load_keys(s)
    clock = read_clock_state(s.tai_offset)
    engine = SessionSender(sender_config(s, clock, keys))
    dest = dest or _destination(s)
    ep = open_sender_endpoint(s, dest)
    stats = SessionStats(s.dscp, s.ecn)
    session = {"remote": format_address(dest), "local": format_address(ep.local),
               "auth_mode": "authenticated" if s.authenticated else "open", "ssid": s.ssid or 0,
               "clock_source": s.clock_source, "count": s.count, "send_delay_ms": s.send_delay,
               "timestamping": "kernel" if ep.caps.kernel_rx_timestamp else "user-space",
               "clock": clock.how}
    out = _Output(s, session)
    hooks = [out.event]
    agent = None
    try:
        if s.metrics:
            from .observability.http import serve
            from .observability.metrics import SenderMetrics
            metrics = SenderMetrics()
            hooks.append(metrics.add_session((session["remote"], str(s.ssid or 0)), stats))
            serve(metrics, s.metrics_addr)
        if s.snmp:
            from .observability.mib_values import sender_objects
            from .observability.snmp import SENDER_SUBTREE, SubAgent
            agent = SubAgent(s.snmp_socket, SENDER_SUBTREE, lambda: sender_objects(stats, s, dest, ep.local[1]),
                             "stamp-suite sender")
            agent.start()
    except BaseException:
        ep.close()
        raise
    if s.output_format == "text":
        pace = f"with {s.window} in flight" if s.window else f"every {s.send_delay:g} ms"
        print(f"{PROG} {__version__} sending to {session['remote']} from {session['local']}: "
              f"{'until interrupted' if s.count == 0 else s.count} packets {pace}, "
              f"{session['auth_mode']} mode", flush=True)
    for note in ep.caps.notes():
        print(f"note: {note}", file=sys.stderr)

    progress = s.output_format == "text" and not s.print_stats and sys.stderr.isatty()
    last_report = [time.monotonic()]

    def tick(result: RunResult) -> None:
        """Every second: the progress line on a terminal; every --report-interval: an interim summary."""
        if progress:
            d = stats.to_dict()
            loss = d["packets"]["loss_ratio"] or 0.0
            print(f"\r  sent {stats.sent}  received {stats.received}  lost {stats.lost} ({loss:.1%})  "
                  f"rtt p50 {ms(d['rtt_ns']['percentiles']['p50'])}   ", end="", file=sys.stderr, flush=True)
        if s.report_interval and time.monotonic() - last_report[0] >= s.report_interval:
            last_report[0] = time.monotonic()
            session["duration_s"] = (time.time_ns() - result.started_ns) / 1e9
            if s.output_format == "json":
                print(summary_json(stats.to_dict(), session, kind="interim"), flush=True)
            elif s.output_format == "text":
                print(summary_text(stats.to_dict(), session), flush=True)

    runner = SenderRunner(engine, ep, dest, count=s.count, interval_ns=int(s.send_delay * 1e6),
                          timeout_ns=int(s.timeout * 1e9), stats=stats,
                          on_event=hooks[0] if len(hooks) == 1 else (lambda ev: [h(ev) for h in hooks]),
                          on_tick=tick if (progress or s.report_interval) else None,
                          tick_ns=int(min(1.0, s.report_interval or 1.0) * 1e9))
    _install_sigterm()
    try:
        result = runner.run_window(s.window) if s.window else runner.run()
    finally:
        ep.close()
        if agent is not None:
            agent.stop()
        if progress:
            print("\r" + " " * 78 + "\r", end="", file=sys.stderr)
    out.finish(result)
    return _exit_status(stats, engine)


def _exit_status(stats: SessionStats, engine: SessionSender) -> int:
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
    elif engine.config.authenticated:
        why = ("timed out; in authenticated mode a reflector silently drops packets whose HMAC fails: "
               "check that both ends use the same key (and -A A)")
    else:
        why = "timed out: no reply within --timeout"
    print(f"{PROG}: no replies: {why}", file=sys.stderr)
    return 1


# -- self test -----------------------------------------------------------------------------
def _self_test(s: Settings, flags: dict[str, Any]) -> int:
    """A reflector on 127.0.0.1 in a thread, and a short measurement of it."""
    from dataclasses import replace
    keys = load_keys(s)
    clock = read_clock_state(s.tai_offset)
    engine = Reflector(reflector_config(replace(s, stateful_reflector=True), clock, keys))
    ep = open_reflector_endpoint(replace(s, local_addr="::1" if s.force_ipv6 else "127.0.0.1"), 0)
    server = ReflectorServer(engine, ep)
    thread = threading.Thread(target=server.serve, name="self-test-reflector", daemon=True)
    thread.start()
    quick = {"count": 20, "send_delay": 50.0, "timeout": 1.0}
    sender = replace(s, **{k: v for k, v in quick.items() if k not in flags}, self_test=False)
    if sender.output_format == "text":
        print(f"self-test: reflector started on {format_address(ep.local)} (stateful, in this process)")
    try:
        return _run_sender(sender, ep.local)
    finally:
        server.stop()
        thread.join(2)
        ep.close()
