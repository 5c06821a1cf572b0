"""The command line's flags: names, short forms and defaults of the Rust stamp-suite, so its
users can switch without relearning, plus this program's own (every one is also a
snake_case key of a --config TOML file)."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from .keys import hide_keys
from .units import parse_duration

PROG = "stamp-suite"


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints the usage too)
        if message.endswith("expected one argument") and any(_negative(a) for a in sys.argv[1:]):
            # -4 and -6 exist, so argparse takes "-1" for an option, not for a value
            message += " (negative values are not accepted)"
        self.exit(2, f"{self.prog}: error: {hide_keys(message)} (see --help)\n")


def _negative(text: str) -> bool:
    try:
        return float(text) < 0
    except ValueError:
        return False


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


def _duration(unit: str):
    def convert(text: str) -> float:
        try:
            return parse_duration(text, unit)
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
    p = OneLineParser(prog=PROG, description="STAMP (RFC 8762/8972/9503/9534) Session-Sender; with -i the "
                      "Session-Reflector. 'stamp-suite monitor --config FILE' measures many reflectors "
                      "continuously.", argument_default=argparse.SUPPRESS, add_help=False)
    g = p.add_argument_group("general")
    g.add_argument("-h", "--help", action="help", help="show this help and exit")
    g.add_argument("-V", "--version", action="store_true", dest="show_version",
                   help="print the version (with --verbose: the platform capabilities) and exit")
    g.add_argument("-v", "--verbose", action="store_true", help="more detail at start-up")
    g.add_argument("--config", metavar="FILE", help="TOML settings file (defaults < file < flags)")
    g.add_argument("--print-completion", choices=["bash", "zsh", "tcsh", "fish"], metavar="SHELL",
                   help="print a completion script for bash, zsh or tcsh and exit "
                        "(e.g. > /etc/bash_completion.d/stamp-suite)")
    g.add_argument("--print-man-page", action="store_true",
                   help="print the manual page (roff) and exit (e.g. > /usr/local/share/man/man1/stamp-suite.1)")
    g.add_argument("--wireshark-dissector", action="store_true",
                   help="print the path of the STAMP Lua dissector for Wireshark and exit "
                        '(tshark -X lua_script:"$(stamp-suite --wireshark-dissector)" ...)')
    g.add_argument("--self-test", action="store_true",
                   help="start a reflector on loopback inside this process and measure it")
    g.add_argument("-i", "--is-reflector", action="store_true", help="run as Session-Reflector")

    a = p.add_argument_group("addresses")
    a.add_argument("-r", "--remote-addr", metavar="HOST[:PORT]",
                   help="the reflector: a name or an address, with a port if not 862 (192.0.2.1:8620, "
                        "[2001:db8::1]:8620, reflector.example.net)")
    a.add_argument("-S", "--local-addr", help="local address to bind [default: reflector :: dual-stack, "
                   "sender the wildcard of the remote's family]")
    a.add_argument("-p", "--remote-port", type=_int, help="reflector UDP port [default: 862]")
    a.add_argument("-o", "--local-port", type=_int, help="local UDP port [default: reflector 862, sender ephemeral]")
    a.add_argument("-4", action="store_true", dest="force_ipv4", help="IPv4 only")
    a.add_argument("-6", action="store_true", dest="force_ipv6", help="IPv6 only")

    t = p.add_argument_group("test session")
    t.add_argument("-K", "--clock-source", type=str.upper, help="timestamp format NTP or PTP [default: NTP]")
    t.add_argument("-d", "--send-delay", type=_duration("ms"), metavar="TIME",
                   help="time between packets: 20ms, 0.5s, 200us; a bare number is ms [default: 1000]")
    t.add_argument("-c", "--count", type=_int, help="packets to send, 0 = until interrupted [default: 1000]")
    t.add_argument("-L", "--timeout", type=_duration("s"), metavar="TIME",
                   help="wait this long for a reply; a bare number is seconds [default: 5]")
    t.add_argument("-A", "--auth-mode", type=_auth_mode, help="A = authenticated, O = open [default: O]")
    t.add_argument("-R", action="store_true", dest="print_stats",
                   help="print every packet (with -v: raw timestamps and every TLV), and every lost one; "
                        "reflector: every packet received, answered or dropped and why")
    t.add_argument("-q", "--quiet", action="store_true",
                   help="print only ping's closing lines at the end (warnings stay on)")
    t.add_argument("--full", action="store_true", help="the summary with every figure (percentiles, one-way, "
                   "delay variation, path), not the screenful")
    t.add_argument("-w", "--max-runtime", type=_duration("s"), metavar="TIME",
                   help="stop after this long, whatever --count says (ping's -w) [default: no limit]")
    t.add_argument("--window", type=_int, metavar="N",
                   help="capacity mode: keep N packets in flight, the next sent as each reply arrives; "
                        "reports replies/s (ignores --send-delay)")
    t.add_argument("--ssid", type=_int, help="STAMP Session Identifier 1..65535 (RFC 8972)")
    t.add_argument("--padding", type=_int, help="Extra Padding TLV of this many octets")
    t.add_argument("--dscp", type=_int, help="DSCP of test packets (and requested for replies with --cos)")
    t.add_argument("--ecn", type=_int, help="ECN of test packets 0..3")
    t.add_argument("--output-format", choices=["text", "json", "csv"], help="report format [default: text]")
    t.add_argument("--report-interval", type=_duration("s"), metavar="TIME",
                   help="interim summary this often, e.g. 10s; a bare number is seconds (0 = off)")
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
    r.add_argument("--max-sessions", type=_int, help="sessions kept by the whole reflector, oldest evicted; each "
                   "worker keeps its share, so one sender host (served by one worker) gets 1/workers of it "
                   "[default: 100000]")
    r.add_argument("--tlv-mode", choices=["echo", "ignore"], help="process TLVs, or copy them untouched")
    r.add_argument("--verify-tlv-hmac", action="store_true", help="require a valid HMAC TLV in open mode too")
    r.add_argument("--allowed-ssids", type=_int_list, help="only serve these SSIDs (comma-separated)")
    r.add_argument("--cos-allowed-dscp", type=_int_list, help="DSCP values a CoS TLV may request [default: all]")
    r.add_argument("--return-address-allow", type=_str_list,
                   help="prefixes a Return Path may redirect replies to (open mode) [default: none]")
    r.add_argument("--return-srv6-allow", type=_str_list,
                   help="IPv6 prefixes the SIDs of a Return Path SRv6 segment list may come from (open mode); "
                        "replies then carry that Segment Routing Header (Linux) [default: none]")
    r.add_argument("--reflector-member-link-id", type=_int, help="member link ID for RFC 9534 micro-sessions")
    r.add_argument("--workers", type=_int,
                   help="reflector processes sharing the port, each sender address (IPv6: /64) served by one of "
                        "them; limits and counters are the reflector's total [default: one per usable CPU on "
                        "Linux, at most 8]")
    r.add_argument("--drop-short-packets", "--strict-packets", action="store_true",
                   help="hardened profile: no reply to packets shorter than 44 octets (by default they get a "
                        "44-octet base packet, RFC 8762 §4.6, for TWAMP-Light senders)")
    r.add_argument("--answer-short-packets", action="store_true", help=argparse.SUPPRESS)  # the default now
    r.add_argument("--accept-nonzero-mbz", action="store_true", help=argparse.SUPPRESS)  # the default now
    r.add_argument("--busy-poll", type=_int, metavar="USEC",
                   help="keep polling this long after each packet instead of sleeping: lower residence time "
                        "(T3 - T2) for a core's worth of CPU while traffic flows [default: 0]")
    r.add_argument("--max-pps", type=float, help="packets/s answered per source address (0 = no limit)")
    r.add_argument("--max-pps-burst", "--reflector-rate-burst", type=float,
                   help="burst allowed above --max-pps [default: one second's worth]")
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
    x.add_argument("--access-report-timer", type=_duration("s"), metavar="TIME",
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
