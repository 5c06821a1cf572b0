"""``stamp-suite --self-test``: a reflector on loopback inside this process, and a short
measurement of it with the settings given (a quick check that everything works here)."""

from __future__ import annotations

from ..assembly import ReflectorThread
from ..config import OutputFormat, Settings
from ..net.resolve import format_address
from ..net.signals import StopRequest
from . import send


def run(s: Settings, stop: StopRequest) -> int:
    reflector_settings = s.replace(stateful_reflector=True, local_addr="::1" if s.common.force_ipv6 else "127.0.0.1",
                                   local_port=0)
    with ReflectorThread(reflector_settings, "self-test-reflector") as reflector:
        host, port = reflector.address
        sender = s.replace(self_test=False, remote_addr=host, remote_port=port)
        if sender.output.output_format is OutputFormat.TEXT:
            print(f"self-test: reflector started on {format_address(reflector.address)} (stateful, in this process)")
        return send.run(sender, stop)
