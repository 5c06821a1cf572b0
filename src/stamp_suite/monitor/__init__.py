"""``stamp-suite monitor``: many Session-Senders in one process, into Prometheus, JSON lines
and SNMP (:mod:`.config` reads the targets file, :mod:`.service` runs them)."""

from .config import MonitorConfig, load_config
from .service import Monitor

__all__ = ["Monitor", "MonitorConfig", "load_config"]
