"""The manual page (``--print-man-page``): argparse-manpage's page of the main parser (name,
synopsis, description, every option by group), plus what a parser cannot say: the monitor
command, exit status, signals, files and examples.  The MONITOR section's options come from
the monitor's own parser, so they cannot drift from ``stamp-suite monitor --help``."""

from __future__ import annotations

import argparse

from argparse_manpage.manpage import Manpage

from . import __version__
from .args import PROG, build_parser
from .commands import monitor


def page() -> str:
    man = Manpage(build_parser(), {"project_name": PROG, "version": __version__, "manual_title": "stamp-suite manual",
                                   "description": "STAMP (RFC 8762, 8972, 9503, 9534) Session-Sender and "
                                                  "Session-Reflector"})
    # In the order of man-pages(7): the command, then EXIT STATUS ... EXAMPLES last.
    for heading, content in (("MONITOR", _monitor()), ("EXIT STATUS", EXIT_STATUS), ("SIGNALS", SIGNALS),
                             ("FILES", FILES), ("EXAMPLES", EXAMPLES)):
        man.add_section(heading, "=", content)
    return str(man)


def roff(text: str) -> str:
    """Plain text as roff: a backslash printed as one, '-' a real hyphen-minus (options are
    typed as shown), and no line taken for a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.splitlines())


def _monitor() -> str:
    parser = monitor.build_parser()
    lines = [f".B {roff(parser.prog)} \\-\\-config \\fIFILE\\fR [\\fIoptions\\fR]", ".PP",
             roff(f"{parser.description} Each target is a sender session that runs until the monitor stops; "
                  "every window (60 and 300 s unless [monitor] windows says otherwise) is written as a JSON "
                  "line and served as Prometheus metrics. Its options are its own; the sender's settings of "
                  "each target are in the targets file (see FILES)."), ".PP", roff(parser.epilog or "")]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        value = f" \\fI{roff(action.metavar or action.dest.upper())}\\fR" if action.nargs != 0 else ""
        lines += [".TP", ", ".join(f"\\fB{roff(opt)}\\fR{value}" for opt in action.option_strings),
                  roff(action.help or "")]
    return "\n".join(lines)


def _items(*pairs: tuple[str, str], bold: bool = True) -> str:
    """Tagged paragraphs: (a tag, in bold, or as written in roff with ``bold=False``; its text)."""
    tags = [f"\\fB{roff(tag)}\\fR" if bold else tag for tag, _ in pairs]
    return "\n".join(f".TP\n{tag}\n{roff(text)}" for tag, (_, text) in zip(tags, pairs))


EXIT_STATUS = _items(
    ("0", "the sender received at least one reply (a run stopped by a signal included); the reflector or the "
          "monitor was stopped by SIGINT or SIGTERM; a --help, --version or --print-* flag."),
    ("1", "a failure while running: no reply at all (the reason is said: ICMP unreachable, timed out, HMAC "
          "failures), a port that cannot be bound (in use, or 862 without the privilege), a metrics address in "
          "use, a reflector worker that died, an output that cannot be written (a closed pipe, a full disk)."),
    ("2", "invalid flags or settings: on the command line, in a settings or targets file, a key file (its mode "
          "included), a name that does not resolve, plotting without matplotlib."),
    ("128+N", "stopped by signal N while still starting (resolving a name, reading a key file): 130 for SIGINT, "
              "143 for SIGTERM."),
)

SIGNALS = _items(
    ("SIGINT, SIGTERM", "stop. The sender stops sending, waits for nothing more and prints its summary (packets "
                        "still within --timeout are counted as unanswered, not lost); the reflector stops its "
                        "workers (within 3 s) and prints its totals; the monitor stops and logs its schedule "
                        "error. While the program is still starting, it ends at once (see EXIT STATUS)."),
    ("SIGHUP", "reload. The reflector re-reads its --config file and key files and applies what can change while "
               "it runs (keys, allow-lists, limits, TLV mode), saying what changed; the monitor re-reads its "
               "targets file. A file with an error changes nothing: the running settings are kept."),
    ("SIGUSR1", "print every thread's stack on stderr (for a process that seems stuck)."),
)

FILES = _items(
    ("\\fB\\-\\-config\\fR \\fIFILE\\fR", "a TOML settings file for one role, sender or reflector: the long flag "
                                          "names in snake_case at its top level (remote_addr, count, ...); flags "
                                          "given on the command line win over it. hmac_key is not accepted there "
                                          "(use hmac_key_file). Examples with every key: examples/sender.toml and "
                                          "examples/reflector.toml in the source tree."),
    ("\\fBstamp\\-suite monitor \\-\\-config\\fR \\fIFILE\\fR",
     "the monitor's targets file: [monitor] (windows, jsonl, metrics_addr, snmp, snmp_socket), [defaults] (sender "
     "settings for every target) and one [[targets]] table per reflector (a name and its sender settings). "
     "Example with every key: examples/monitor.toml."),
    ("\\fB\\-\\-hmac\\-key\\-file\\fR \\fIFILE\\fR, \\fB\\-\\-hmac\\-key\\-dir\\fR \\fIDIR\\fR\\fB/\\fR\\fISSID\\fR",
     "an HMAC key in hex, at least 16 octets (32 recommended): openssl rand -hex 32 > key && chmod 600 key. A key "
     "file readable by its group or others is refused. A key directory holds one file per SSID, named <SSID> "
     "or <SSID>.key. $CREDENTIALS_DIRECTORY in a path is systemd's LoadCredential= directory."),
    ("\\fI/var/agentx/master\\fR", "the AgentX master socket of net-snmp's snmpd, for --snmp (--snmp-socket, "
                                   "[monitor] snmp_socket)."),
    bold=False,
)


def _example(text: str, *commands: str) -> str:
    return "\n".join([".PP", roff(text), ".PP", ".RS 4", ".nf", *map(roff, commands), ".fi", ".RE"])


EXAMPLES = "\n".join((
    _example("A short measurement: 20 packets 10 ms apart, then the summary:",
             "stamp-suite -r reflector.example.net -c 20 -d 10"),
    _example("Try both ends on this host (a reflector on loopback inside the process):", "stamp-suite --self-test"),
    _example("A reflector on every address, port 862 (root or CAP_NET_BIND_SERVICE), or on one address and "
             "another port, printing every packet:", "stamp-suite -i", "stamp-suite -i -S 192.0.2.1 -o 8620 -R"),
    _example("Authenticated mode: make a key, give it to both ends (the same file, mode 0600), and measure:",
             "openssl rand -hex 32 > /etc/stamp/key && chmod 600 /etc/stamp/key",
             "stamp-suite -i -A A --hmac-key-file /etc/stamp/key",
             "stamp-suite -r 192.0.2.1 -A A --hmac-key-file /etc/stamp/key --ssid 100"),
    _example("JSON: one summary object at the end (with -R, a JSON line per packet before it):",
             "stamp-suite -r 192.0.2.1 -c 100 -d 10 --output-format json | jq .rtt_ns.percentiles"),
    _example("Settings from a file, with a flag that wins over it:", "stamp-suite --config sender.toml -c 10"),
    _example("Measure many reflectors continuously, metrics for Prometheus on 127.0.0.1:9863, reload the targets "
             "with SIGHUP:", "stamp-suite monitor --config /etc/stamp/targets.toml --metrics-addr 127.0.0.1:9863",
             "systemctl reload stamp-monitor"),
))
