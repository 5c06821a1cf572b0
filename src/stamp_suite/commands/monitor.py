"""``stamp-suite monitor --config FILE``: measure many reflectors continuously."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from collections.abc import Mapping

from ..args import OneLineParser
from ..assembly import TargetSessions
from ..config import ConfigError, check_metrics_addr
from ..monitor import Monitor
from ..net.signals import StopRequest
from ..say import count, time_lines


def _raise_fd_limit(needed: int) -> None:
    """One socket per target: make room for them under the soft open-files limit (POSIX)."""
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY else min(hard, needed),
                                                    hard))


def build_parser() -> OneLineParser:
    ap = OneLineParser(prog="stamp-suite monitor", description="Measure many reflectors continuously.",
                       epilog="SIGHUP re-reads the file (a file with an error changes nothing). A monitor with more "
                              "targets than its core measures skips late sends and says so: the log line "
                              "'overloaded: ...', stamp_monitor_sends_skipped_total; split the targets with --shard.")
    ap.add_argument("--config", required=True, metavar="FILE",
                    help="TOML file with [monitor], [defaults], [groups.NAME] and [[targets]]; its [monitor] "
                         "file_sd files, http_sd endpoint and dns_sd names add targets (docs/monitor.md)")
    ap.add_argument("--metrics-addr", help="serve Prometheus metrics here (overrides [monitor] metrics_addr)")
    ap.add_argument("--jsonl", metavar="FILE",
                    help='write the window lines here ("-": stdout; overrides [monitor] jsonl)')
    ap.add_argument("--shard", metavar="K/N", type=_shard, default=(1, 1),
                    help="run only shard K of N of the file's targets (by a hash of each name), for N monitor "
                         "processes; 'auto': K from a StatefulSet pod's ordinal ($STAMP_SHARD_INDEX or the "
                         "host name's -ORDINAL), N from $STAMP_SHARDS; "
                         "processes on one or more hosts sharing one targets file")
    ap.add_argument("--watch", action="store_true",
                    help="re-read the file when it changes, as on SIGHUP (a Kubernetes ConfigMap; checked every 2 s)")
    ap.add_argument("--name", help="this monitor's name: the 'monitor' label of every metric and field of every "
                                   "window line [default: the host name, with -K when sharded]")
    return ap


def _shard(text: str) -> tuple[int, int] | str:
    if text == "auto":
        return text  # read from the environment once the flags are all read (auto_shard)
    k, sep, n = text.partition("/")
    if not (sep and k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise argparse.ArgumentTypeError(f"{text!r} is not K/N with 1 <= K <= N (e.g. 2/4)")
    return int(k), int(n)


def auto_shard(env: Mapping[str, str], hostname: str) -> tuple[int, int]:
    """--shard auto, for the replicas of a Kubernetes StatefulSet (deploy/kubernetes/): shard
    K = ordinal + 1 of N = $STAMP_SHARDS.  The ordinal is $STAMP_SHARD_INDEX (the pod-index
    label, given by the downward API) or the pod's name, which the StatefulSet makes NAME-ORDINAL."""
    count = env.get("STAMP_SHARDS", "")
    if not count.isdigit() or int(count) < 1:
        raise ConfigError(f"--shard auto: STAMP_SHARDS must be the number of shards (the StatefulSet's replicas), "
                          f"not {count!r}" if count else "--shard auto: STAMP_SHARDS is not set (the StatefulSet's "
                          "replicas)")
    index = env.get("STAMP_SHARD_INDEX", "")
    if index and not index.isdigit():
        raise ConfigError(f"--shard auto: STAMP_SHARD_INDEX must be the pod's ordinal (0, 1, ...), not {index!r}")
    index = index or hostname.rpartition("-")[2]
    if not index.isdigit():
        raise ConfigError(f"--shard auto: no ordinal: STAMP_SHARD_INDEX is not set and the host name {hostname!r} "
                          "does not end in -ORDINAL")
    if int(index) >= int(count):
        raise ConfigError(f"--shard auto: ordinal {index} is not below STAMP_SHARDS {count}: is STAMP_SHARDS the "
                          "StatefulSet's replica count?")
    return int(index) + 1, int(count)


def main(argv: list[str], stop: StopRequest) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.shard == "auto":
        args.shard = auto_shard(os.environ, socket.gethostname())
        args.name = args.name or socket.gethostname()  # the pod's name says its shard already
    if args.metrics_addr:
        try:
            check_metrics_addr(args.metrics_addr)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    # Log lines start with their time, unless systemd's journal takes them (it sets JOURNAL_STREAM
    # for a unit's stderr) and adds its own.
    time_lines(not os.environ.get("JOURNAL_STREAM"))
    try:
        return _run(args, stop)
    finally:
        time_lines(False)


def _run(args: argparse.Namespace, stop: StopRequest) -> int:
    monitor = Monitor(args.config, stop, TargetSessions(), metrics_addr=args.metrics_addr, shard=args.shard,
                      name=args.name, jsonl=args.jsonl, watch=args.watch)
    _raise_fd_limit(len(monitor.config.targets) + 256)
    # The threads beside the sending loop (the /metrics server writing a 60 MB answer, the
    # SNMP agent) hand the GIL back to it within 1 ms, not 5 ms.  Not much less: at 0.1 ms the
    # threads spent more time handing it over than working.
    sys.setswitchinterval(0.001)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: monitor.request_reload())
    stop.started()
    try:
        monitor.start()
        cfg = monitor.config
        shard = f" (shard {args.shard[0]}/{args.shard[1]})" if args.shard[1] > 1 else ""
        waiting = f" ({len(monitor.unresolved):,} not resolved yet)" if monitor.unresolved else ""
        flows = f" ({len(cfg.flow_of):,} of them flows of {len(set(t for t, _ in cfg.flow_of.values())):,})" \
            if cfg.flow_of else ""
        monitor.log(f"{monitor.name}: {count(len(cfg.targets), 'target')}{flows}{waiting}{shard}, windows "
                    f"{', '.join(f'{w}s' for w in cfg.windows)}"
                    + (f", metrics on {cfg.metrics_addr}" if cfg.metrics_addr else ""))
        monitor.run()
    finally:
        monitor.close()
    errs = sorted(monitor.driver.schedule_error_ns)
    if errs:
        monitor.log(f"stopped; schedule error over the last {count(len(errs), 'send')}: "
                    f"p50 {errs[len(errs) // 2] / 1e3:.1f} us, "
                    f"p99 {errs[int(len(errs) * 0.99)] / 1e3:.1f} us")
    return 0
