"""One module per command: send, reflect, monitor, self-test, plot.  ``cli`` dispatches here."""

from __future__ import annotations

from ..config import Settings


def exports_text(s: Settings) -> str:
    """Where --metrics and --snmp put what they export, for a banner (empty when neither)."""
    host, _, port = s.export.metrics_addr.rpartition(":")
    where = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else s.export.metrics_addr
    parts = ([f"Prometheus metrics at http://{where}/metrics"] if s.export.metrics else []) + \
            ([f"SNMP through the AgentX master at {s.export.snmp_socket}"] if s.export.snmp else [])
    return "".join(f"; {p}" for p in parts)
