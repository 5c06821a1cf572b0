"""The command line's flags: names, short forms and defaults of the Rust stamp-suite, so its
users can switch without relearning, plus this program's own (every one is also a
snake_case key of a --config TOML file)."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from .keys import hide_keys
from .units import setting_duration

PROG = "stamp-suite"


class OneLineParser(argparse.ArgumentParser):
    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        # Hosts may come before, between or after the flags (stamp-suite host1 -c 5 host2), as
        # with ping and fping; parse_intermixed_args is argparse's way to take them so.
        self.argv = list(sys.argv[1:] if args is None else args)  # for --help's role, and errors
        return self.parse_intermixed_args(args, namespace)

    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints the usage too)
        if message.endswith("expected one argument") and any(_negative(a) for a in getattr(self, "argv", ())):
            # -4 and -6 exist, so argparse takes "-1" for an option, not for a value
            message += " (negative values are not accepted)"
        self.exit(2, f"{self.prog}: error: {hide_keys(message)} (see --help)\n")


def _negative(text: str) -> bool:
    """-1, -0.5, -1ms: a negative value argparse took for an option."""
    return len(text) > 1 and text[0] == "-" and (text[1].isdigit() or text[1] == ".") and text not in ("-4", "-6")


def _integer(text: str) -> int:
    """Decimal (leading zeros too: --dscp 046), or 0x, 0o, 0b."""
    text = text.strip()
    return int(text, 10) if text.lstrip("+-").isdigit() else int(text, 0)


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(_integer(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None


def _str_list(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _auth_mode(text: str) -> str:
    return text.upper()


def _duration(name: str):
    def convert(text: str) -> float | int:
        try:
            return setting_duration(name, text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = "duration"  # argparse names the type in its errors
    return convert


def _int(text: str) -> int:
    try:
        return _integer(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=PROG, usage=USAGE, description="STAMP (RFC 8762/8972/9503/9534): measure loss, delay "
                      "and path to Session-Reflectors, or be one (-i).", epilog=EPILOG,
                      argument_default=argparse.SUPPRESS, add_help=False, formatter_class=_Formatter)
    p.add_argument("targets", nargs="*", metavar="HOST[:PORT]", help=argparse.SUPPRESS)  # as -r; several at once
    g = _group(p, "general", BOTH)
    g.add_argument("-h", "--help", action=RoleHelp, nargs="?", metavar="TOPIC",
                   help="sender, reflector, tlvs or all")
    g.add_argument("-V", "--version", action="store_true", dest="show_version",
                   help="the version (-v: what this platform can do)")
    g.add_argument("-v", "--verbose", action="store_true", help="more detail at start-up and per packet")
    g.add_argument("--config", metavar="FILE", help="TOML settings file (defaults < file < flags)")
    g.add_argument("--self-test", action="store_true", help="measure a reflector started on loopback here")
    g.add_argument("-i", "--is-reflector", action="store_true", help="run as Session-Reflector")
    g.add_argument("-R", action="store_true", dest="print_stats",
                   help="print each packet; -i: each answer or drop")

    g = _group(p, "documentation and integrations", ())
    g.add_argument("--print-completion", choices=["bash", "zsh", "tcsh", "fish"], metavar="SHELL",
                   help="print a completion script for bash, zsh, tcsh or fish and exit "
                        "(e.g. > /etc/bash_completion.d/stamp-suite)")
    g.add_argument("--print-man-page", action="store_true",
                   help="print the manual page (roff) and exit (e.g. > /usr/local/share/man/man1/stamp-suite.1)")
    g.add_argument("--wireshark-dissector", action="store_true",
                   help="print the path of the STAMP Lua dissector for Wireshark and exit "
                        '(tshark -X lua_script:"$(stamp-suite --wireshark-dissector)" ...)')

    a = _group(p, "addresses", BOTH)
    a.add_argument("-r", "--remote-addr", metavar="HOST[:PORT]",
                   help="a reflector, as HOST[:PORT] (192.0.2.1:8620, [2001:db8::1]:8620, a name)")
    a.add_argument("-S", "--local-addr", metavar="ADDR",
                   help="bind here [default: reflector ::, sender any]")
    a.add_argument("-p", "--remote-port", type=_int, metavar="PORT", help="reflector port [default: 862]")
    a.add_argument("-o", "--local-port", type=_int, metavar="PORT",
                   help="local port [default: reflector 862, sender any]")
    a.add_argument("-4", action="store_true", dest="force_ipv4", help="IPv4 only")
    a.add_argument("-6", action="store_true", dest="force_ipv6", help="IPv6 only")

    t = _group(p, "test session", SENDER)
    t.add_argument("-c", "--count", type=_int, metavar="N", help="packets to send, 0 = no end [default: 1000]")
    t.add_argument("-d", "--send-delay", type=_duration("send_delay"), metavar="TIME",
                   help="gap between packets (bare: ms) [default: 1000]")
    t.add_argument("-L", "--timeout", type=_duration("timeout"), metavar="TIME",
                   help="wait for a reply (bare: s) [default: 5]")
    t.add_argument("-w", "--max-runtime", type=_duration("max_runtime"), metavar="TIME",
                   help="stop sending after this long, whatever -c says")
    t.add_argument("--window", type=_int, metavar="N",
                   help="capacity mode: N in flight, replies/s (0: off)")
    t.add_argument("--ssid", type=_int, metavar="ID", help="STAMP Session Identifier 1..65535")
    t.add_argument("--padding", type=_int, metavar="N", help="Extra Padding TLV of N octets")
    t.add_argument("--dscp", type=_int, metavar="N", help="DSCP of the test packets 0..63")
    t.add_argument("--ecn", type=_int, metavar="N", help="ECN of the test packets 0..3")
    t.add_argument("--outage-threshold", type=_duration("outage_threshold"), metavar="TIME",
                   help="metrics: loss this long is an outage [default: 3s]")
    t.add_argument("--errored-rtt", type=_duration("errored_rtt"), metavar="TIME",
                   help="metrics: a round trip over this errs its second")

    o = _group(p, "output", SENDER)
    o.add_argument("-q", "--quiet", action="store_true", help="ping's closing lines only (warnings stay)")
    o.add_argument("--full", action="store_true", help="the summary with every figure, not a screenful")
    o.add_argument("--output-format", choices=["text", "json", "csv"], metavar="FMT",
                   help="text, json (lines) or csv [default: text]")
    o.add_argument("--report-interval", type=_duration("report_interval"), metavar="TIME",
                   help="an interim summary this often (bare: s; 0: none)")
    o.add_argument("--plot-output", metavar="PNG", help="write a PNG plot of this run (or of --plot)")
    o.add_argument("--plot-html", metavar="HTML", help="also an HTML page with the plot")
    o.add_argument("--plot", metavar="JSONL", help="plot a run saved with --output-format json -R")

    c = _group(p, "mode and clock", BOTH)
    c.add_argument("-A", "--auth-mode", type=_auth_mode, metavar="MODE",
                   help="A = authenticated, O = open [default: O]")
    c.add_argument("-K", "--clock-source", type=str.upper, metavar="FMT", help="NTP or PTP timestamps [default: NTP]")
    c.add_argument("--timestamping", choices=["auto", "kernel", "user"], metavar="HOW",
                   help="receive times: auto, kernel or user")
    c.add_argument("--tai-offset", type=_int, metavar="S", help="TAI - UTC for PTP [default: kernel's or 37]")
    c.add_argument("--clock-synchronized", action="store_true", default=argparse.SUPPRESS,
                   help="set the S bit, whatever the kernel says")
    c.add_argument("--error-scale", type=_int, metavar="N", help="Error Estimate Scale 0..63 [default: measured]")
    c.add_argument("--error-multiplier", type=_int, metavar="N",
                   help="Error Estimate Multiplier 1..255")

    k = _group(p, "keys", BOTH)
    k.add_argument("--hmac-key", metavar="HEX", help="HMAC key in hex, 16 octets or more")
    k.add_argument("--hmac-key-file", metavar="FILE", help="the key in hex in a file of mode 0600")
    k.add_argument("--hmac-key-dir", metavar="DIR", help="key files by SSID, DIR/<SSID> (either role)")

    r = _group(p, "reflector", REFLECTOR)
    r.add_argument("--stateful-reflector", action="store_true", help="number replies per session (RFC 8762 §4)")
    r.add_argument("--session-timeout", type=_duration("session_timeout"), metavar="TIME",
                   help="forget a session idle this long [default: 300 s]")
    r.add_argument("--max-sessions", type=_int, metavar="N",
                   help="sessions kept, oldest evicted [default: 100000]")
    r.add_argument("--workers", type=_int, metavar="N",
                   help="processes on the port [default: a CPU each, <= 8]")
    r.add_argument("--tlv-mode", choices=["echo", "ignore"], metavar="MODE",
                   help="echo: process TLVs; ignore: copy them as they are")
    r.add_argument("--verify-tlv-hmac", action="store_true", help="require a valid HMAC TLV in open mode too")
    r.add_argument("--allowed-ssids", type=_int_list, metavar="LIST", help="only serve these SSIDs (1,2,...)")
    r.add_argument("--cos-allowed-dscp", type=_int_list, metavar="LIST",
                   help="DSCP values a CoS TLV may ask for (all)")
    r.add_argument("--return-address-allow", type=_str_list, metavar="PREFIXES",
                   help="where a Return Path may send replies")
    r.add_argument("--return-srv6-allow", type=_str_list, metavar="PREFIXES",
                   help="SIDs a Return Path may route replies via")
    r.add_argument("--reflector-member-link-id", type=_int, metavar="ID", help="member link ID (RFC 9534)")
    r.add_argument("--max-pps", type=float, metavar="N", help="packets/s answered per source (0 = no limit)")
    r.add_argument("--max-pps-burst", "--reflector-rate-burst", type=float, metavar="N",
                   help="burst above --max-pps (a second's worth)")
    r.add_argument("--busy-poll", type=_duration("busy_poll"), metavar="TIME",
                   help="poll after a packet (bare: us): less T3 - T2, more CPU")
    r.add_argument("--drop-short-packets", "--strict-packets", action="store_true",
                   help="no reply to packets under 44 octets")
    r.add_argument("--accept-zero-multiplier", action="store_true",
                   help="answer an Error Estimate Multiplier of 0")
    r.add_argument("--answer-short-packets", action="store_true", help=argparse.SUPPRESS)  # the default now
    r.add_argument("--accept-nonzero-mbz", action="store_true", help=argparse.SUPPRESS)  # the default now

    x = _group(p, "TLVs the sender asks for (RFC 8972, 9503, 9534)", ("tlvs",))
    x.add_argument("--cos", action="store_true", help="Class of Service TLV: DSCP/ECN seen at the reflector")
    x.add_argument("--location", action="store_true", help="Location TLV: addresses and ports the reflector saw")
    x.add_argument("--timestamp-info", action="store_true", help="Timestamp Information TLV")
    x.add_argument("--direct-measurement", action="store_true", help="Direct Measurement TLV (counters)")
    x.add_argument("--follow-up-telemetry", action="store_true", help="Follow-Up Telemetry TLV")
    x.add_argument("--access-report", type=_int, metavar="ID", help="Access Report TLV with this Access ID")
    x.add_argument("--access-return-code", type=_int, metavar="N", help="Access Report Return Code [default: 1]")
    x.add_argument("--access-report-timer", type=_duration("access_report_timer"), metavar="TIME",
                   help="send the Access Report again when no reply carried it this long [default: 3]")
    x.add_argument("--access-report-retries", type=_int, metavar="N",
                   help="Access Report retransmissions before giving up [default: 4]")
    x.add_argument("--hmac-tlv", action="store_true", help="add an HMAC TLV in open mode")
    x.add_argument("--dest-node-addr", metavar="ADDR", help="Destination Node Address TLV (needs --ssid)")
    x.add_argument("--return-path-cc", type=_int, metavar="N", help="Return Path Control Code: 0 no reply, "
                   "1 same link")
    x.add_argument("--return-address", metavar="ADDR", help="Return Path: send the reply to this address")
    x.add_argument("--return-sr-mpls-labels", type=_int_list, metavar="LIST", help="Return Path SR-MPLS labels")
    x.add_argument("--return-srv6-sids", type=_str_list, metavar="LIST", help="Return Path SRv6 SIDs")
    x.add_argument("--micro-session-id", type=_int, metavar="ID", help="Micro-session ID TLV: our member link ID")

    e = _group(p, "export", BOTH)
    e.add_argument("--metrics", action="store_true", help="serve Prometheus metrics")
    e.add_argument("--metrics-addr", metavar="ADDR:PORT", help="where [default: 127.0.0.1:9090]")
    e.add_argument("--snmp", action="store_true", help="AgentX sub-agent for net-snmp's snmpd")
    e.add_argument("--snmp-socket", metavar="PATH", help="AgentX master [default: /var/agentx/master]")
    return p


# -- help by role ---------------------------------------------------------------------------------
USAGE = """%(prog)s [options] HOST[:PORT] ...    measure reflectors (or -r HOST[:PORT])
       %(prog)s -i [options]                 be a reflector (port 862)
       %(prog)s --self-test                  both, on loopback, in this process
       %(prog)s monitor --config FILE        measure many reflectors continuously (monitor --help)"""
EPILOG = ("Durations take a unit: 200us, 10ms, 1.5s, 5m. Exit status: 0 replies came, 1 none or a failure, "
          "2 bad settings. More: --help reflector|tlvs|all, man stamp-suite.")
SENDER, REFLECTOR = ("sender",), ("reflector",)
BOTH = ("sender", "reflector")
TOPICS = ("sender", "reflector", "tlvs", "all")


class _Formatter(argparse.HelpFormatter):
    """Option help beside the flags, not under them: a role's help fits a screen."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def _group(p: argparse.ArgumentParser, title: str, topics: tuple[str, ...]) -> argparse._ArgumentGroup:
    """An option group shown by --help for these topics (and by --help all)."""
    group = p.add_argument_group(title)
    group.topics = topics  # type: ignore[attr-defined]
    return group


class RoleHelp(argparse.Action):
    """--help [TOPIC]: the groups of one role, so that a screen holds them; -i before it, or no
    topic with -i anywhere, means the reflector's."""

    def __call__(self, parser, namespace, values, option_string=None) -> NoReturn:
        topic = values or ("reflector" if getattr(namespace, "is_reflector", False)
                           or {"-i", "--is-reflector"} & set(getattr(parser, "argv", ())) else "sender")
        if topic not in TOPICS:
            parser.error(f"--help {topic}: the topics are {', '.join(TOPICS)}")
        groups = parser._action_groups
        parser._action_groups = [g for g in groups if topic == "all" or topic in getattr(g, "topics", ())]
        try:
            parser.print_help()
        finally:
            parser._action_groups = groups
        parser.exit()
