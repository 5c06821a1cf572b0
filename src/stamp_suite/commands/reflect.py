"""``stamp-suite -i``: the Session-Reflector as a service."""

from __future__ import annotations


from .. import __version__
from ..build import clock_description, load_keys, reflector_config
from ..config import Settings
from ..say import note, say
from ..endpoints import open_reflector_endpoint, reflector_port
from ..net.clock import ClockState, ClockWatcher, read_clock_state
from ..net.reuseport import open_port_group
from ..net.signals import StopRequest
from ..net.udp import UdpEndpoint, format_address
from ..reflector.engine import Reflector
from ..reflector.service import ReflectorService, default_workers, format_totals

PROG = "stamp-suite"


def run(s: Settings, stop: StopRequest) -> int:
    keys = load_keys(s)
    clock = read_clock_state(s.tai_offset)
    endpoints, why_one = open_port_group(lambda port, reuse: open_reflector_endpoint(s, port, reuse),
                                         reflector_port(s), s.workers or default_workers())
    if why_one:
        note(why_one)
    config = reflector_config(s, clock, keys, endpoints[0].srv6_unavailable)

    def make_watcher(engine: Reflector, log_changes: bool) -> ClockWatcher:
        return ClockWatcher(clock, lambda state: engine.update_clock(clock_description(s, state)),
                            read=lambda: read_clock_state(s.tai_offset), log=note if log_changes else None)

    service = ReflectorService(config, endpoints, stop=stop, make_watcher=make_watcher, print_packets=s.print_stats,
                               busy_poll_us=s.busy_poll, observe_processing_time=s.metrics)
    agent = metrics = None
    try:
        if s.metrics:  # its port is bound before the workers exist: a port in use stops everything
            from ..observability.http import bind
            from ..observability.metrics import ReflectorCollector
            metrics = bind(ReflectorCollector(service), s.metrics_addr)
        service.start((metrics.sock,) if metrics else ())  # forks the workers: before any thread starts
        if metrics:
            metrics.start()
        if s.snmp:
            from ..observability.mib_values import reflector_objects
            from ..observability.snmp import REFLECTOR_SUBTREE, SubAgent
            agent = SubAgent(s.snmp_socket, REFLECTOR_SUBTREE, lambda: reflector_objects(service, s),
                             "stamp-suite reflector")
            agent.start()
        print(_banner(s, endpoints[0], clock, service.workers), flush=True)
        for line in endpoints[0].caps.notes() + ([clock.how] if s.verbose or not clock.synchronized else []):
            note(line)
        if s.return_srv6_allow and config.srv6_unavailable:
            note(f"Return Path SRv6 segment lists are flagged U here: {config.srv6_unavailable}")
        service.run()
    finally:
        for part in (agent, metrics):
            if part is not None:
                part.stop()
        service.shutdown()
        if metrics:
            metrics.sock.close()
    print(format_totals(service), end="", flush=True)
    if service.failure:
        say(f"{PROG}: {service.failure}")
        return 1
    return 0


def _banner(s: Settings, ep: UdpEndpoint, clock: ClockState, workers: int) -> str:
    where = format_address(ep.local) + (" (dual-stack IPv6+IPv4)" if ep.dual_stack else "")
    mode = "authenticated" if s.authenticated else "open"
    state = "stateful" if s.stateful_reflector else "stateless"
    ts = "kernel" if ep.caps.kernel_rx_timestamp else "user-space"
    return (f"{PROG} {__version__} reflector listening on {where}, {mode} mode, {state}, "
            f"TLV mode {s.tlv_mode}, {s.clock_source} timestamps ({ts} receive time), "
            f"{workers} worker{'s' if workers > 1 else ''}, {ep.io_path}")
