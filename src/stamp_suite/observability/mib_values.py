"""STAMP-SUITE-MIB objects and their live values (mibs/STAMP-SUITE-MIB.mib)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..reflector.engine import TlvMode
from .agentx import VarType as T
from .snmp import REFLECTOR_SUBTREE, SENDER_SUBTREE, Objects

if TYPE_CHECKING:
    from ..config import Settings
    from ..reflector.service import ReflectorService
    from ..sender.stats import SessionStats

U32 = 0xFFFF_FFFF
TRUE, FALSE = 1, 2  # SNMPv2-TC TruthValue


def reflector_objects(service: ReflectorService, s: Settings) -> Objects:
    cfg, stats = REFLECTOR_SUBTREE + (1,), REFLECTOR_SUBTREE + (2,)
    entry = REFLECTOR_SUBTREE + (3, 1)
    c = service.counters
    host, port = service.local[:2]
    now_ns = time.monotonic_ns()  # sessions keep monotonic times
    objs: Objects = [
        (cfg + (1, 0), T.INTEGER, 1 if service.running else 2),
        (cfg + (2, 0), T.OCTET_STRING, host),
        (cfg + (3, 0), T.GAUGE32, port),
        (cfg + (4, 0), T.INTEGER, 2 if s.common.authenticated else 1),
        (cfg + (5, 0), T.INTEGER, 1 if s.reflector.tlv_mode is TlvMode.ECHO else 2),
        (cfg + (6, 0), T.INTEGER, TRUE if s.reflector.stateful_reflector else FALSE),
        (cfg + (7, 0), T.GAUGE32, s.reflector.session_timeout),
        (stats + (1, 0), T.COUNTER64, c.received),
        (stats + (2, 0), T.COUNTER64, c.reflected),
        (stats + (3, 0), T.COUNTER64, c.dropped_total),
        (stats + (4, 0), T.GAUGE32, c.active_sessions),
        (stats + (5, 0), T.TIME_TICKS, ((time.time_ns() - service.started_ns) // 10_000_000) & U32),
        (stats + (6, 0), T.COUNTER64, c.send_errors),
        (stats + (7, 0), T.COUNTER64, c.dropped_unread),
    ]
    for sess in service.sessions():
        i = sess.index
        objs += [
            (entry + (2, i), T.OCTET_STRING, sess.key[0]),
            (entry + (3, i), T.GAUGE32, sess.key[1]),
            (entry + (4, i), T.COUNTER64, sess.received),
            (entry + (5, i), T.COUNTER64, sess.transmitted),
            (entry + (6, i), T.GAUGE32, sess.last_sender_sequence or 0),
            (entry + (7, i), T.GAUGE32, max(0, now_ns - sess.last_seen_ns) // 1_000_000_000),
            (entry + (8, i), T.GAUGE32, sess.key[4]),
        ]
    return objs


def _us(ns: float | None) -> int:
    return 0 if ns is None else min(U32, max(0, int(ns // 1000)))


def _session_row(index: int, name: str, remote: tuple[str, int], stats: SessionStats) -> Objects:
    """One row of stampSenderSessionTable."""
    entry = SENDER_SUBTREE + (3, 1)
    return [(entry + (2, index), T.OCTET_STRING, name),
            (entry + (3, index), T.OCTET_STRING, remote[0]),
            (entry + (4, index), T.GAUGE32, remote[1]),
            (entry + (5, index), T.COUNTER64, stats.sent),
            (entry + (6, index), T.COUNTER64, stats.received),
            (entry + (7, index), T.GAUGE32, stats.lost),
            (entry + (8, index), T.GAUGE32, _us(stats.rtt.mean)),
            (entry + (9, index), T.GAUGE32, _us(stats.rtt_var.jitter_ns))]


def monitor_objects(monitor) -> Objects:
    """The monitor's targets as rows of stampSenderSessionTable."""
    objs: Objects = []
    for t in list(monitor.targets.values()):
        objs += _session_row(t.index, t.name, t.destination, t.stats)
    return objs


def sender_objects(stats: SessionStats, s: Settings, remote: tuple[str, int], local_port: int) -> Objects:
    cfg, st = SENDER_SUBTREE + (1,), SENDER_SUBTREE + (2,)
    rtt = stats.rtt
    us = _us
    loss = stats.loss_ratio
    return _session_row(1, f"{remote[0]}:{remote[1]}", remote, stats) + [
        (cfg + (1, 0), T.OCTET_STRING, remote[0]),
        (cfg + (2, 0), T.GAUGE32, remote[1]),
        (cfg + (3, 0), T.GAUGE32, local_port),
        (cfg + (4, 0), T.GAUGE32, s.sender.count),
        (cfg + (5, 0), T.GAUGE32, min(U32, int(s.sender.send_delay * 1000))),
        (cfg + (6, 0), T.INTEGER, 2 if s.common.authenticated else 1),
        (st + (1, 0), T.COUNTER64, stats.sent),
        (st + (2, 0), T.COUNTER64, stats.received),
        (st + (3, 0), T.GAUGE32, stats.lost),
        (st + (4, 0), T.GAUGE32, us(rtt.min)),
        (st + (5, 0), T.GAUGE32, us(rtt.max)),
        (st + (6, 0), T.GAUGE32, us(rtt.mean)),
        (st + (7, 0), T.GAUGE32, us(stats.rtt_var.jitter_ns)),
        (st + (8, 0), T.GAUGE32, 0 if loss is None else round(loss * 1000)),
    ]
