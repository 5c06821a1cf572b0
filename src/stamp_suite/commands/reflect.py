"""``stamp-suite -i``: the Session-Reflector as a service."""

from __future__ import annotations

from collections.abc import Callable

from .. import __version__
from ..args import PROG
from ..assembly import reflector_service
from ..config import Settings
from ..net.clock import ClockState
from ..net.resolve import format_address
from ..net.signals import StopRequest
from ..net.udp import UdpEndpoint
from ..reflector.service import format_totals
from ..say import note, say
from . import exports_text


def run(s: Settings, stop: StopRequest, reread: Callable[[], Settings] | None = None) -> int:
    """Reflect until stopped; ``reread``: the settings as they are now, for SIGHUP's reload."""
    built = reflector_service(s, stop, note, reread)
    if built.note:
        note(built.note)
    service, config = built.service, built.config
    stop.started()  # before the workers are forked: from here a stop winds them down
    try:
        built.start()
        print(_banner(s, built.endpoint, built.clock, service.workers), flush=True)
        for line in built.endpoint.caps.notes() + ([built.clock.how] if s.output.verbose or not built.clock.synchronized
                                                   else []):
            note(line)
        if s.reflector.return_srv6_allow and config.srv6_unavailable:
            note(f"Return Path SRv6 segment lists are flagged U here: {config.srv6_unavailable}")
        service.run()
    finally:
        built.shutdown()
    print(format_totals(service), end="", flush=True)
    if service.failure:
        say(f"{PROG}: {service.failure}")
        return 1
    return 0


def _banner(s: Settings, ep: UdpEndpoint, clock: ClockState, workers: int) -> str:
    where = format_address(ep.local) + (" (dual-stack IPv6+IPv4)" if ep.dual_stack else "")
    mode = "authenticated" if s.common.authenticated else "open"
    state = "stateful" if s.reflector.stateful_reflector else "stateless"
    ts = "kernel" if ep.caps.kernel_rx_timestamp else "user-space"
    return (f"{PROG} {__version__} reflector listening on {where}, {mode} mode, {state}, "
            f"TLV mode {s.reflector.tlv_mode}, {s.common.clock_source} timestamps ({ts} receive time), "
            f"{workers} worker{'s' if workers > 1 else ''}, {ep.io_path}{exports_text(s)}")
