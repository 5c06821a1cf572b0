"""Renderers of a session: per-packet lines and the summary, in text, JSON and CSV.

The text summary starts with the Rust stamp-suite's lines (``Packets sent:`` ...
``Avg RTT:``) so scripts written for it keep working; grouped details follow.
JSON follows schemas/stamp-report.schema.json (``schema_version`` below).
"""

from __future__ import annotations

import csv
import datetime
import io
import json
from typing import Any

from ..tlvs import ClassOfService, FollowUpTelemetry, ReturnPath, TlvValue
from ..wire.timestamp import SyncSource, TimestampMethod
from ..wire.tlv import TlvType
from .events import (
    Duplicate,
    Event,
    Invalid,
    Late,
    Lost,
    Refused,
    Rejected,
    Reply,
    Sample,
    TlvProblem,
    Unanswered,
)

SCHEMA_VERSION = 2
# Per-packet records (JSON lines, CSV rows): absolute times t1..t4 are RFC 3339 strings with
# nanoseconds (POSIX nanoseconds exceed 2^53, which many JSON tools round); durations are
# integer nanoseconds, always far below 2^53.
CSV_FIELDS = ["kind", "seq", "reflector_seq", "t1", "t2", "t3", "t4", "rtt_ns", "rtt_raw_ns", "forward_ns",
              "backward_ns", "residence_ns", "reflector_ttl", "reply_ttl", "reply_dscp", "reply_ecn",
              "reflector_dscp", "reflector_ecn", "late", "detail"]
PROBLEM_MARKS = {"not_processed": "U", "malformed": "M", "integrity": "I", "unknown": "?", "unreadable": "!",
                 "truncated": "!", "not_read": "-"}
# The reflector's TTL where no reply carried one (the TTL octet is the 41st)
NOT_IN_REPLIES = "not in the replies (38-40 octets: a TWAMP-Light reflector's)"


def ms(ns: float | None, digits: int = 3) -> str:
    if ns is None:
        return "n/a"
    value = ns / 1e6
    if round(value, digits) == 0:
        value = 0.0  # a tiny negative value (an IPDV median) is not "-0.000 ms"
    return f"{value:.{digits}f} ms"


def _ms_tight(ns: float) -> str:
    """As :func:`ms`, without the space: per-packet lines (the Rust tool's form)."""
    return ms(ns).replace(" ", "")


def remote_label(session: dict[str, Any]) -> str:
    """``name (address:port)`` when the reflector was given by name, else ``address:port``."""
    remote = session.get("remote", "")
    return f"{session['remote_name']} ({remote})" if session.get("remote_name") else remote


def rfc3339(ns: int | None) -> str | None:
    """POSIX nanoseconds as 2024-01-01T00:00:00.500000000Z."""
    if ns is None:
        return None
    sec, frac = divmod(ns, 1_000_000_000)
    return datetime.datetime.fromtimestamp(sec, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def parse_rfc3339(text: str) -> int:
    """The inverse of :func:`rfc3339`, in POSIX nanoseconds."""
    whole, _, frac = text.rstrip("Z").partition(".")
    sec = int(datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.UTC).timestamp())
    return sec * 1_000_000_000 + int(frac.ljust(9, "0")[:9] or 0)


def sample_record(kind: str, s: Sample | None, detail: str = "", seq: int | None = None,
                  t1_ns: int | None = None, late: bool = False) -> dict[str, Any]:
    """One packet as a flat dict: the JSON-lines object and the CSV row."""
    rec: dict[str, Any] = {k: None for k in CSV_FIELDS}
    rec.update(kind=kind, detail=detail or None, seq=seq, t1=rfc3339(t1_ns))
    if s is not None:
        cos = s.tlvs.get(ClassOfService)
        rec.update(seq=s.sequence_number, reflector_seq=s.reflector_sequence_number, t1=rfc3339(s.t1_ns),
                   t2=rfc3339(s.t2_ns), t3=rfc3339(s.t3_ns), t4=rfc3339(s.t4_ns), rtt_ns=s.rtt_ns,
                   rtt_raw_ns=s.t4_ns - s.t1_ns, forward_ns=s.forward_ns, backward_ns=s.backward_ns,
                   residence_ns=s.residence_ns, reflector_ttl=s.reflector_ttl, reply_ttl=s.reply_ttl, late=late,
                   reply_dscp=None if s.reply_tos is None else s.reply_tos >> 2,
                   reply_ecn=None if s.reply_tos is None else s.reply_tos & 3,
                   reflector_dscp=cos and cos.dscp2, reflector_ecn=cos and cos.ecn)
    return rec


def event_record(ev: Event) -> dict[str, Any] | None:
    """The per-packet record of an event (JSON line, CSV row, plot point), or None."""
    if isinstance(ev, Reply):
        return sample_record("sample", ev.sample)
    if isinstance(ev, Late):
        return sample_record("sample", ev.sample, late=True)
    if isinstance(ev, Duplicate):
        return sample_record("duplicate", ev.sample)
    if isinstance(ev, Invalid):
        return sample_record("invalid", ev.sample, ev.reason)
    if isinstance(ev, Lost):
        return sample_record("lost", None, seq=ev.sequence_number, t1_ns=ev.t1_ns)
    if isinstance(ev, Unanswered):
        return sample_record("unanswered", None, "stopped within its --timeout", ev.sequence_number, ev.t1_ns)
    if isinstance(ev, Rejected):
        return sample_record(ev.reason, None, ev.detail)
    if isinstance(ev, Refused) and ev.sequence_number is not None:  # when the ICMP error came; lost later
        return sample_record("refused", None, f"ICMP {ev.icmp}", ev.sequence_number)
    return None


def tlv_record(tlvs: dict[type, TlvValue]) -> dict[str, Any]:
    """What was read from the TLVs, for JSON, by name: the Follow-Up Telemetry time as RFC 3339."""
    out = {value.KEY: value.record() for value in tlvs.values()}
    fu = out.get(FollowUpTelemetry.KEY)
    if fu is not None:
        out[FollowUpTelemetry.KEY] = {k: v for k, v in fu.items() if k != "tx_ns"} | {"tx": rfc3339(fu["tx_ns"])}
    return out


def problems_record(problems: tuple[TlvProblem, ...]) -> list[dict[str, Any]]:
    return [{"type": p.tlv_type, "kind": p.kind, "detail": p.detail} for p in problems]


def packet_text(event: Event, verbose: bool = False, dscp: bool = False) -> str | None:
    """One line per packet, starting as the Rust stamp-suite's does (``seq=N rtt=X.XXXms
    ttl=N``): one-way delays when both clocks are synchronised, DSCP when asked (at the
    reflector / of the reply here), TLV problems (type:U/M/I); with ``verbose`` the raw
    timestamps (``reflector_recv_ts=``, ``reflector_send_ts=``) and every TLV read."""
    if isinstance(event, Lost):  # a refused one was said when its ICMP error came
        return None if event.refused else f"seq={event.sequence_number} lost"
    if isinstance(event, Refused):
        return None if event.sequence_number is None else f"seq={event.sequence_number} refused (ICMP {event.icmp})"
    if isinstance(event, Unanswered):
        return f"seq={event.sequence_number} unanswered (stopped within its --timeout)"
    if isinstance(event, Rejected):
        return f"{event.reason}: {event.detail}"
    if isinstance(event, Invalid):
        return f"seq={event.sample.sequence_number} invalid timestamps ({event.reason}): kept out of the delays"
    if not isinstance(event, (Reply, Late, Duplicate)):
        return None
    s = event.sample
    ttl = "?" if s.reflector_ttl is None else s.reflector_ttl  # (a reply too short to carry it)
    parts = [f"seq={s.sequence_number}", f"rtt={_ms_tight(s.rtt_ns)}", f"ttl={ttl}"]
    if s.clocks_synchronized or verbose:
        parts += [f"fwd={_ms_tight(s.forward_ns)}", f"bwd={_ms_tight(s.backward_ns)}"]
    cos = s.tlvs.get(ClassOfService)
    if dscp or cos:
        here = "?" if s.reply_tos is None else str(s.reply_tos >> 2)
        parts.append(f"dscp={cos.dscp2 if cos else '?'}/{here}")
    rp = s.tlvs.get(ReturnPath)
    if rp is not None or any(p.tlv_type == TlvType.RETURN_PATH for p in s.tlv_problems):
        # the path the reply was asked to take: whether it did, and the hop limit it arrived with
        parts.append(f"return_path={'+'.join(rp.followed) if rp else 'not_used'}")
        if not verbose:
            parts.append(f"reply_ttl={'unknown' if s.reply_ttl is None else s.reply_ttl}")
    if isinstance(event, Late):
        parts.append("late")
    elif isinstance(event, Duplicate):
        parts.append("duplicate")
    if s.tlv_problems:
        parts.append("tlv=" + ",".join(f"{p.tlv_type}:{PROBLEM_MARKS.get(p.kind, '?')}" for p in s.tlv_problems))
    if verbose:
        parts += [f"reflector_seq={s.reflector_sequence_number}", f"reflector_recv_ts={rfc3339(s.t2_ns)}",
                  f"reflector_send_ts={rfc3339(s.t3_ns)}", f"residence={_ms_tight(s.residence_ns)}",
                  f"reply_ttl={'unknown' if s.reply_ttl is None else s.reply_ttl}"]
        if s.reply_tos is not None:
            parts.append(f"reply_dscp={s.reply_tos >> 2} reply_ecn={s.reply_tos & 3}")
        parts += [f"{k}={_compact(v)}" for k, v in tlv_record(s.tlvs).items()]
    return " ".join(parts)


def interim_text(index: int, start_s: float, end_s: float, d: dict[str, Any]) -> str:
    """One line for one --report-interval: what happened in it."""
    p, rtt = d["packets"], d["rtt_ns"]
    loss = 100.0 * p["loss_ratio"] if p["loss_ratio"] is not None else 0.0
    jitter = d["delay_variation"]["ipdv_rtt_ns"]["jitter_rfc3550"]
    head = f"[interval {index}: {start_s:.1f}-{end_s:.1f} s] sent {p['sent']} received {p['received']} " \
           f"lost {p['lost']} ({loss:.1f}%)" + (f" dropped unread here {p['dropped_unread']}" if p["dropped_unread"]
                                                else "")
    if not rtt["count"]:
        return head + " rtt n/a"
    return (f"{head} rtt min/avg/max {ms(rtt['min'])[:-3]}/{ms(rtt['mean'])[:-3]}/{ms(rtt['max'])} "
            f"p99 {ms(rtt['percentiles']['p99'])} jitter {ms(jitter)}")


# Codes of the RFC 8972 registries that -v names rather than numbers.
_CODE_NAMES = {"sync_src_in": SyncSource, "sync_src_out": SyncSource, "timestamp_in": TimestampMethod,
               "timestamp_out": TimestampMethod, "timestamp_mode": TimestampMethod}


def _compact(v: Any) -> str:
    """A TLV's record in a -v line: codes by name, n/a for nothing, lowercase booleans."""
    if isinstance(v, dict):
        return ",".join(f"{k}:{_word(k, x)}" for k, x in v.items())
    if isinstance(v, list):
        return ",".join(map(str, v))
    return str(v)


def _word(key: str, x: Any) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return str(x).lower()
    names = _CODE_NAMES.get(key)
    if names is not None and x in names._value2member_map_:
        return names(x).name.lower()
    return str(x)


class CsvWriter:
    def __init__(self, out: io.TextIOBase) -> None:
        self._w = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
        self._w.writeheader()

    def row(self, rec: dict[str, Any]) -> None:
        self._w.writerow({k: "" if v is None else str(v).lower() if isinstance(v, bool) else v
                          for k, v in rec.items()})


def summary_json(summary: dict[str, Any], session: dict[str, Any], kind: str = "summary", **extra: Any) -> str:
    return json.dumps({"type": kind, "schema_version": SCHEMA_VERSION, "session": session, **extra, **summary})


def _rust_block(d: dict[str, Any]) -> list[str]:
    """The Rust stamp-suite's summary lines, first in every text summary: scripts parse them."""
    p, rtt = d["packets"], d["rtt_ns"]
    return ["--- STAMP Statistics ---",
            f"Packets sent: {p['sent']}",
            f"Packets received: {p['received']}",
            f"Packets lost: {p['lost']} ({_loss_pct(p):.1f}%)"
            + (f", {p['unanswered_at_stop']} unanswered when stopped (not counted)" if p["unanswered_at_stop"]
               else ""),
            *([f"Packets invalid: {p['invalid']} (answered, with timestamps that cannot be: in no delay)"]
              if p["invalid"] else []),
            f"Min RTT: {ms(rtt['min'])}",
            f"Max RTT: {ms(rtt['max'])}",
            f"Avg RTT: {ms(rtt['mean'])}",
            ""]


def _loss_pct(p: dict[str, Any]) -> float:
    return 100.0 * p["loss_ratio"] if p["loss_ratio"] is not None else 0.0


# The counters of things that went wrong besides loss, as the short summary names them.
TROUBLE = (("late", "late"), ("duplicates", "duplicates"), ("reordered", "reordered"), ("refused", "refused (ICMP)"),
           ("hmac_failures", "HMAC failures"), ("tlv_integrity_failures", "TLVs unused: HMAC TLV failed (-R: I)"),
           ("micro_session_mismatches", "micro-session mismatches"), ("malformed", "malformed"),
           ("foreign", "foreign"),
           ("dropped_unread", "dropped unread by this host (it fell behind: not the path's loss)"))


# Sends this late at p99 (or later than their interval, if that is longer): the run did not keep
# the pace asked, and the short summary says so.
BEHIND_NS = 10_000_000


def _rate(d: dict[str, Any], session: dict[str, Any]) -> str:
    """The send rate achieved, and the one asked (-d)."""
    rate, delay_ms = d["sending"]["rate_per_s"], session.get("send_delay_ms")
    if rate is None:
        return "n/a"
    asked = f" of {1000 / delay_ms:,.0f} asked" if delay_ms else ""
    return f"{rate:,.0f} packets/s{asked}"


def _lateness(d: dict[str, Any]) -> str:
    """How late the scheduled sends left: p50, p99, max."""
    late = d["sending"]["late_ns"]
    if not late["count"]:
        return "n/a (no schedule)"
    return f"p50 {ms(late['percentiles']['p50'])}  p99 {ms(late['percentiles']['p99'])}  max {ms(late['max'])}"


def _fell_behind(d: dict[str, Any], session: dict[str, Any]) -> bool:
    late = d["sending"]["late_ns"]
    return bool(late["count"]) and late["percentiles"]["p99"] > max(
        BEHIND_NS, (session.get("send_delay_ms") or 0) * 1e6)


def summary_short(d: dict[str, Any], session: dict[str, Any], per_packet: bool = False) -> str:
    """The default summary: the Rust tool's block, then each other figure once, in a screen
    (``per_packet``: -R printed every packet, so the closing hint does not offer it)."""
    lines = _rust_block(d)
    p, rtt = d["packets"], d["rtt_ns"]
    lines.append(f"{remote_label(session)}: {session.get('auth_mode', '')} mode, "
                 f"{session.get('clock_source', '')} timestamps from the {session.get('timestamping', '')}, "
                 f"{session.get('duration_s', 0):.3f} s")
    rows: list[tuple[str, str]] = []
    if _fell_behind(d, session):
        rows.append(("sends", f"{_rate(d, session)}, late {_lateness(d)}: this host fell behind its schedule"))
    if rtt["count"]:
        pc, dv = rtt["percentiles"], d["delay_variation"]
        rows.append(("round trip", f"p50 {ms(pc['p50'])}  p99 {ms(pc['p99'])}  stddev {ms(rtt['stddev'])}  "
                                   f"jitter {ms(dv['ipdv_rtt_ns']['jitter_rfc3550'])}"))
        ow = d["one_way"]
        rows.append(("one-way p50", f"forward {ms(ow['forward_ns']['percentiles']['p50'])}  backward "
                                    f"{ms(ow['backward_ns']['percentiles']['p50'])}"
                     + ("" if ow["meaningful"] else "  (clocks not synchronised: offsets included)")))
    ttl, dscp = d["ttl"], d["dscp_ecn"]
    if d["packets"]["received"]:
        here = _counts(ttl["at_sender"]) or "unknown"
        there = _counts(ttl["at_reflector"], unknown=255) or NOT_IN_REPLIES
        rows.append(("TTL", f"at the reflector {there}, here {here}"))
        rows.append(("DSCP/ECN", f"sent {dscp['sent']['dscp']}/{dscp['sent']['ecn']}"
                                 + (f", at the reflector {_counts(dscp['at_reflector'])}" if dscp["at_reflector"]
                                    else "") + f", here {_counts(dscp['at_sender']) or 'unknown'}"))
    if d.get("return_path"):
        rows.append(("Return Path", _return_path_text(d["return_path"])))
    if d["loss_by_direction"]:
        rows.append(("lost", "forward {forward}, backward {backward}, unknown {unknown_direction}".format(
            **d["loss_by_direction"])))
    if d["direct_measurement"]:
        rows.append(("Direct Measurement", "S_TxC {s_txc}  R_RxC {r_rxc}  R_TxC {r_txc}".format(
            **d["direct_measurement"])))
    fu = d["follow_up"]
    if fu["t3_shift_ns"]["count"]:
        rows.append(("Follow-Up", f"{fu['t3_shift_ns']['count']} replies left "
                                  f"{ms(fu['t3_shift_ns']['percentiles']['p50'])} after their T3 (p50)"))
    trouble = ", ".join(f"{label} {p[key]}" for key, label in TROUBLE if p[key])
    if trouble:
        rows.append(("also", trouble))
    width = max((len(k) for k, _ in rows), default=0)
    lines.extend(f"  {k:<{width}}  {v}" for k, v in rows)
    lines.append("(every figure: --full" + ("" if per_packet else "; every packet: -R") + ")")
    return "\n".join(lines) + "\n"


def summary_ping(d: dict[str, Any], session: dict[str, Any]) -> str:
    """-q: ping's closing lines."""
    p, rtt = d["packets"], d["rtt_ns"]
    extra = "".join(f", +{p[key]} {label}" for key, label in (("duplicates", "duplicates"), ("refused", "refused"),
                                                               ("dropped_unread", "dropped unread here")) if p[key])
    lines = [f"--- {remote_label(session)} STAMP statistics ---",
             f"{p['sent']} packets transmitted, {p['received']} received{extra}, {_loss_pct(p):g}% packet loss, "
             f"time {session.get('duration_s', 0) * 1000:.0f}ms"]
    if rtt["count"]:
        figures = "/".join(f"{(rtt[k] or 0) / 1e6:.3f}" for k in ("min", "mean", "max", "stddev"))
        lines.append(f"rtt min/avg/max/mdev = {figures} ms")
    return "\n".join(lines) + "\n"


def summary_table(rows: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> str:
    """Several targets (fping's habit): one line each (target, summary, session), the figures
    in milliseconds; what a column cannot say (packets unanswered at a stop, capacity) below."""
    head = ("target", "sent", "recv", "lost", "loss", "min", "avg", "max", "p99", "jitter")
    lines = [head]
    notes = []
    for target, d, session in rows:
        if d["packets"]["unanswered_at_stop"]:
            notes.append(f"{target}: {d['packets']['unanswered_at_stop']} unanswered when stopped (not counted)")
        if "capacity_replies_per_s" in session:
            notes.append(f"{target}: capacity {session['capacity_replies_per_s']:,.0f} replies/s")
        if d["packets"]["dropped_unread"]:
            notes.append(f"{target}: {d['packets']['dropped_unread']} replies dropped unread by this host (it fell "
                         f"behind: not the path's loss)")
        if _fell_behind(d, session):
            notes.append(f"{target}: sends {_rate(d, session)}, late {_lateness(d)}: this host fell behind its "
                         f"schedule")
        p, rtt = d["packets"], d["rtt_ns"]
        figures = [rtt["min"], rtt["mean"], rtt["max"], rtt["percentiles"]["p99"],
                   d["delay_variation"]["ipdv_rtt_ns"]["jitter_rfc3550"]]
        lines.append((target, str(p["sent"]), str(p["received"]), str(p["lost"]), f"{_loss_pct(p):.1f}%",
                      *("-" if v is None else f"{v / 1e6:.3f}" for v in figures)))
    width = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = ["  ".join(cell.ljust(width[0]) if i == 0 else cell.rjust(width[i]) for i, cell in enumerate(line))
            for line in lines]
    return "\n".join(text + notes) + "\n(min to jitter in ms; every figure: --full)\n"


def summary_text(d: dict[str, Any], session: dict[str, Any]) -> str:
    """--full: every figure, in sections."""
    p = d["packets"]
    rtt = d["rtt_ns"]
    lines = _rust_block(d)

    def section(title: str, rows: list[tuple[str, str]]) -> None:
        lines.append(title)
        width = max(len(k) for k, _ in rows)
        lines.extend(f"  {k:<{width}}  {v}" for k, v in rows)
        lines.append("")

    section(f"Session  {remote_label(session)}", [
        ("mode", f"{session.get('auth_mode', '')}, SSID {session.get('ssid') or 'none'}, "
                 f"{session.get('clock_source', '')} timestamps"),
        ("timestamping", session.get("timestamping", "")),
        ("duration", f"{session.get('duration_s', 0):.3f} s")])
    section("Packets", [
        ("late (after --timeout)", str(p["late"])), ("duplicates", str(p["duplicates"])),
        ("reordered", f"{p['reordered']} (max extent {d['reordering']['extent_max'] or 0})"),
        ("malformed / foreign", f"{p['malformed']} / {p['foreign']}"),
        ("HMAC failures", str(p["hmac_failures"])), ("ICMP errors", str(p["refused"])),
        ("TLVs unused: their HMAC TLV failed", str(p["tlv_integrity_failures"])),
        ("micro-session mismatches", str(p["micro_session_mismatches"])),
        ("invalid timestamps (kept out of the delays)", str(p["invalid"])),
        ("dropped unread here (not the path's loss)",
         "unknown here" if p["dropped_unread"] is None else str(p["dropped_unread"]))]
        + ([("lost forward / backward / unknown", "{forward} / {backward} / {unknown_direction}".format(
            **d["loss_by_direction"]))] if d["loss_by_direction"] else [])
        + ([("Direct Measurement", "S_TxC {s_txc}  R_RxC {r_rxc}  R_TxC {r_txc}".format(
            **d["direct_measurement"]))] if d["direct_measurement"] else []))
    if p["sent"]:
        section("Sending", [("send rate", _rate(d, session)), ("late against the schedule", _lateness(d))])
    if rtt["count"]:
        pc = rtt["percentiles"]
        section("Round-trip delay  (T4-T1)-(T3-T2)", [
            ("stddev", ms(rtt["stddev"])),  # min, mean and max: in the first lines
            ("p50 / p90 / p95", f"{ms(pc['p50'])} / {ms(pc['p90'])} / {ms(pc['p95'])}"),
            ("p99 / p99.9", f"{ms(pc['p99'])} / {ms(pc['p99.9'])}"),
            ("raw T4-T1 p50", ms(d["rtt_raw_ns"]["percentiles"]["p50"])),
            ("reflector residence p50 / p99", f"{ms(d['residence_ns']['percentiles']['p50'])} / "
                                              f"{ms(d['residence_ns']['percentiles']['p99'])}"),
            ("percentiles", rtt["percentile_method"])])
        fu = d["follow_up"]
        if fu["t3_shift_ns"]["count"]:
            section("Follow-Up Telemetry  (the reflector's real departure times)", [
                ("replies corrected", str(fu["t3_shift_ns"]["count"])),
                ("departure after the T3 carried p50 / p99", f"{ms(fu['t3_shift_ns']['percentiles']['p50'])} / "
                                                             f"{ms(fu['t3_shift_ns']['percentiles']['p99'])}"),
                ("round trip with it p50 / p99", f"{ms(fu['rtt_ns']['percentiles']['p50'])} / "
                                                  f"{ms(fu['rtt_ns']['percentiles']['p99'])}")])
        ow = d["one_way"]
        note = "" if ow["meaningful"] else "  (clocks not both synchronised: offsets included, use variation only)"
        section("One-way delay" + note, [
            ("forward T2-T1 min / p50 / max", f"{ms(ow['forward_ns']['min'])} / "
             f"{ms(ow['forward_ns']['percentiles']['p50'])} / {ms(ow['forward_ns']['max'])}"),
            ("backward T4-T3 min / p50 / max", f"{ms(ow['backward_ns']['min'])} / "
             f"{ms(ow['backward_ns']['percentiles']['p50'])} / {ms(ow['backward_ns']['max'])}")])
        dv = d["delay_variation"]
        section("Delay variation", [
            ("jitter RFC 3550 rtt / fwd / bwd", f"{ms(dv['ipdv_rtt_ns']['jitter_rfc3550'])} / "
             f"{ms(dv['ipdv_forward_ns']['jitter_rfc3550'])} / {ms(dv['ipdv_backward_ns']['jitter_rfc3550'])}"),
            ("IPDV RFC 3393 rtt p50 / p99", f"{ms(dv['ipdv_rtt_ns']['percentiles']['p50'])} / "
             f"{ms(dv['ipdv_rtt_ns']['percentiles']['p99'])}"),
            ("IPDV fwd / bwd p99", f"{ms(dv['ipdv_forward_ns']['percentiles']['p99'])} / "
             f"{ms(dv['ipdv_backward_ns']['percentiles']['p99'])}"),
            ("PDV RFC 5481 p50 / p90 / p99", " / ".join(ms(v) for v in (dv["pdv_rtt_ns"] or {}).values()))])
    ttl = d["ttl"]
    dscp = d["dscp_ecn"]
    answered = bool(p["received"])
    section("Path", [
        ("TTL at reflector", (_counts(ttl["at_reflector"], unknown=255) + f"  (changes {ttl['changes']})"
                              if ttl["at_reflector"] else NOT_IN_REPLIES) if answered else "n/a"),
        ("TTL at sender", _counts(ttl["at_sender"]) or ("unknown (platform cannot read it)" if answered else "n/a")),
        ("DSCP/ECN sent", f"{dscp['sent']['dscp']}/{dscp['sent']['ecn']}"),
        ("DSCP/ECN at reflector", _counts(dscp["at_reflector"])
         or "not reported (no CoS TLV answered" + (": its HMAC TLV failed)" if p["tlv_integrity_failures"]
                                                  else "; --cos asks for one)")),
        ("DSCP/ECN at sender", _counts(dscp["at_sender"]) or ("unknown" if answered else "n/a"))]
        + ([("Return Path", _return_path_text(d["return_path"]))] if d.get("return_path") else []))
    return "\n".join(lines).rstrip() + "\n"


def _return_path_text(rp: dict[str, Any]) -> str:
    followed = ", ".join(f"{k.replace('_', ' ')} x{n}" for k, n in rp["followed"].items())
    return f"used in {rp['honoured']} replies, not in {rp['not_honoured']}" + (f" ({followed})" if followed else "")


def _counts(c: dict, unknown: int | None = None) -> str:
    parts = []
    for k, n in c.items():
        label = f"{k} (unknown?)" if unknown is not None and k == unknown else str(k)
        parts.append(f"{label} x{n}")
    return ", ".join(parts)
