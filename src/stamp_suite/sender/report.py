"""Renderers of a session: per-packet lines and the summary, in text, JSON and CSV.

The text summary starts with the Rust stamp-suite's lines (``Packets sent:`` ...
``Avg RTT:``) so scripts written for it keep working; grouped details follow.
JSON follows schemas/stamp-report.schema.json (``schema_version`` below).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from .events import Duplicate, Event, Late, Lost, Rejected, Reply, Sample, TlvProblem

SCHEMA_VERSION = 1
CSV_FIELDS = ["kind", "seq", "reflector_seq", "t1_ns", "t2_ns", "t3_ns", "t4_ns", "rtt_ns", "rtt_raw_ns", "forward_ns",
              "backward_ns", "residence_ns", "reflector_ttl", "reply_ttl", "reply_dscp", "reply_ecn",
              "reflector_dscp", "reflector_ecn", "late", "detail"]


def ms(ns: float | None, digits: int = 3) -> str:
    return "n/a" if ns is None else f"{ns / 1e6:.{digits}f} ms"


def sample_record(kind: str, s: Sample | None, detail: str = "", seq: int | None = None,
                  t1_ns: int | None = None) -> dict[str, Any]:
    """One packet as a flat dict: the JSON-lines object and the CSV row."""
    rec: dict[str, Any] = {k: None for k in CSV_FIELDS}
    rec.update(kind=kind, detail=detail or None, seq=seq, t1_ns=t1_ns)
    if s is not None:
        cos = s.tlv.get("cos") or {}
        rec.update(seq=s.sequence_number, reflector_seq=s.reflector_sequence_number, t1_ns=s.t1_ns, t2_ns=s.t2_ns,
                   t3_ns=s.t3_ns, t4_ns=s.t4_ns, rtt_ns=s.rtt_ns, rtt_raw_ns=s.t4_ns - s.t1_ns,
                   forward_ns=s.forward_ns,
                   backward_ns=s.backward_ns, residence_ns=s.residence_ns, reflector_ttl=s.reflector_ttl,
                   reply_ttl=s.reply_ttl, late=s.late,
                   reply_dscp=None if s.reply_tos is None else s.reply_tos >> 2,
                   reply_ecn=None if s.reply_tos is None else s.reply_tos & 3,
                   reflector_dscp=cos.get("dscp_at_reflector"), reflector_ecn=cos.get("ecn_at_reflector"))
    return rec


def event_record(ev: Event) -> dict[str, Any] | None:
    """The per-packet record of an event (JSON line, CSV row, plot point), or None."""
    if isinstance(ev, (Reply, Late)):
        return sample_record("sample", ev.sample)
    if isinstance(ev, Duplicate):
        return sample_record("duplicate", ev.sample)
    if isinstance(ev, Lost):
        return sample_record("lost", None, seq=ev.sequence_number, t1_ns=ev.t1_ns)
    if isinstance(ev, Rejected):
        return sample_record(ev.reason, None, ev.detail)
    return None


def problems_record(problems: tuple[TlvProblem, ...]) -> list[dict[str, Any]]:
    return [{"type": p.tlv_type, "kind": p.kind, "detail": p.detail} for p in problems]


def packet_text(event: Event) -> str | None:
    if isinstance(event, Lost):
        return f"seq={event.sequence_number} lost"
    if isinstance(event, Rejected):
        return f"{event.reason}: {event.detail}"
    if not isinstance(event, (Reply, Late, Duplicate)):
        return None
    s = event.sample
    ttl_here = "unknown" if s.reply_ttl is None else str(s.reply_ttl)
    line = (f"seq={s.sequence_number} rtt={s.rtt_ns / 1e6:.3f}ms ttl={s.reflector_ttl} "
            f"reflector_recv_ts={s.t2_ns} reflector_send_ts={s.t3_ns} reflector_seq={s.reflector_sequence_number} "
            f"fwd={s.forward_ns / 1e6:.3f}ms bwd={s.backward_ns / 1e6:.3f}ms reply_ttl={ttl_here}")
    if s.reply_tos is not None:
        line += f" reply_dscp={s.reply_tos >> 2} reply_ecn={s.reply_tos & 3}"
    if isinstance(event, Late):
        line += " [late]"
    elif isinstance(event, Duplicate):
        line += " [duplicate]"
    if s.tlv:
        line += " " + " ".join(f"{k}={_compact(v)}" for k, v in s.tlv.items())
    if s.tlv_problems:
        line += " tlv_problems=" + ",".join(f"{p.tlv_type}:{p.kind}" for p in s.tlv_problems)
    return line


def _compact(v: Any) -> str:
    if isinstance(v, dict):
        return ",".join(f"{k}:{x}" for k, x in v.items())
    if isinstance(v, list):
        return ",".join(map(str, v))
    return str(v)


class CsvWriter:
    def __init__(self, out: io.TextIOBase) -> None:
        self._w = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
        self._w.writeheader()

    def row(self, rec: dict[str, Any]) -> None:
        self._w.writerow({k: "" if v is None else v for k, v in rec.items()})


def summary_json(summary: dict[str, Any], session: dict[str, Any], kind: str = "summary") -> str:
    return json.dumps({"type": kind, "schema_version": SCHEMA_VERSION, "session": session, **summary})


def summary_text(d: dict[str, Any], session: dict[str, Any]) -> str:
    p = d["packets"]
    rtt = d["rtt_ns"]
    loss_pct = 100.0 * p["loss_ratio"] if p["loss_ratio"] is not None else 0.0
    lines = ["--- STAMP Statistics ---",
             f"Packets sent: {p['sent']}",
             f"Packets received: {p['received']}",
             f"Packets lost: {p['lost']} ({loss_pct:.1f}%)",
             f"Min RTT: {ms(rtt['min'])}",
             f"Max RTT: {ms(rtt['max'])}",
             f"Avg RTT: {ms(rtt['mean'])}",
             ""]

    def section(title: str, rows: list[tuple[str, str]]) -> None:
        lines.append(title)
        width = max(len(k) for k, _ in rows)
        lines.extend(f"  {k:<{width}}  {v}" for k, v in rows)
        lines.append("")

    section(f"Session  {session.get('remote', '')}", [
        ("mode", f"{session.get('auth_mode', '')}, SSID {session.get('ssid') or 'none'}, "
                 f"{session.get('clock_source', '')} timestamps"),
        ("timestamping", session.get("timestamping", "")),
        ("duration", f"{session.get('duration_s', 0):.3f} s")])
    section("Packets", [
        ("late (after --timeout)", str(p["late"])), ("duplicates", str(p["duplicates"])),
        ("reordered", f"{p['reordered']} (max extent {d['reordering']['extent_max'] or 0})"),
        ("malformed / foreign", f"{p['malformed']} / {p['foreign']}"),
        ("HMAC failures", str(p["hmac_failures"])), ("ICMP refused", str(p["refused"]))]
        + ([("lost forward / backward / unknown", "{forward} / {backward} / {unknown_direction}".format(
            **d["loss_by_direction"]))] if d["loss_by_direction"] else [])
        + ([("Direct Measurement", "S_TxC {s_txc}  R_RxC {r_rxc}  R_TxC {r_txc}".format(
            **d["direct_measurement"]))] if d["direct_measurement"] else []))
    if rtt["count"]:
        pc = rtt["percentiles"]
        section("Round-trip delay  (T4-T1)-(T3-T2)", [
            ("min / mean / max", f"{ms(rtt['min'])} / {ms(rtt['mean'])} / {ms(rtt['max'])}"),
            ("stddev", ms(rtt["stddev"])),
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
    answered = bool(ttl["at_reflector"])
    section("Path", [
        ("TTL at reflector", _counts(ttl["at_reflector"], unknown=255) + f"  (changes {ttl['changes']})"
         if answered else "n/a"),
        ("TTL at sender", _counts(ttl["at_sender"]) or ("unknown (platform cannot read it)" if answered else "n/a")),
        ("DSCP/ECN sent", f"{dscp['sent']['dscp']}/{dscp['sent']['ecn']}"),
        ("DSCP/ECN at reflector", _counts(dscp["at_reflector"]) or "not reported (use --cos)"),
        ("DSCP/ECN at sender", _counts(dscp["at_sender"]) or ("unknown" if answered else "n/a"))])
    return "\n".join(lines).rstrip() + "\n"


def _counts(c: dict, unknown: int | None = None) -> str:
    parts = []
    for k, n in c.items():
        label = f"{k} (unknown?)" if unknown is not None and k == unknown else str(k)
        parts.append(f"{label} x{n}")
    return ", ".join(parts)
