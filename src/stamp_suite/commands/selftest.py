"""``stamp-suite --self-test``: a reflector on loopback inside this process, and a short
measurement of it with the settings given (a quick check that everything works here)."""

from __future__ import annotations

import threading
from dataclasses import replace

from ..build import load_keys, reflector_config
from ..config import Settings
from ..endpoints import open_reflector_endpoint
from ..net.clock import read_clock_state
from ..net.signals import StopRequest
from ..net.udp import format_address
from ..reflector.engine import Reflector
from ..reflector.server import ReflectorServer
from . import send

QUICK = {"count": 20, "send_delay": 50.0, "timeout": 1.0}  # unless given


def run(s: Settings, stop: StopRequest, given: set[str]) -> int:
    reflector_settings = replace(s, stateful_reflector=True, local_addr="::1" if s.force_ipv6 else "127.0.0.1")
    endpoint = open_reflector_endpoint(reflector_settings, 0)
    engine = Reflector(reflector_config(reflector_settings, read_clock_state(s.tai_offset), load_keys(s),
                                        endpoint.srv6_unavailable))
    server = ReflectorServer(engine, endpoint)
    thread = threading.Thread(target=server.serve, name="self-test-reflector", daemon=True)
    thread.start()
    sender = replace(s, **{k: v for k, v in QUICK.items() if k not in given}, self_test=False,
                     remote_addr=server.endpoint.local[0], remote_port=server.endpoint.local[1])
    if sender.output_format == "text":
        print(f"self-test: reflector started on {format_address(server.endpoint.local)} (stateful, in this process)")
    try:
        return send.run(sender, stop)
    finally:
        server.stop()
        thread.join(2)
        server.endpoint.close()
