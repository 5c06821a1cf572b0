"""Targets from DNS SRV records, as Prometheus's dns_sd_configs (type SRV) read them: each record
of the name is a target, its name ``host:port`` from the record's target and port, looked up
again when the answer's TTL runs out.  A name that does not exist, or has no SRV records, has no
targets (the DNS said so); a lookup that fails (no answer, SERVFAIL) keeps the last good targets
(monitor/polled.py)."""

from __future__ import annotations

from typing import Any

import dns.exception
import dns.resolver

from ..config import ConfigError
from ..net.resolve import ResolveError, split_host_port
from .file_sd import group_targets

LIFETIME_S = 5.0  # a lookup's time, all its tries together
TTL_S = (1.0, 3600.0)  # the TTL taken as the time to the next lookup, within these bounds
EMPTY_S = 30.0  # a name without records is looked up again after this
RETRY_S = 5.0  # a lookup that failed is tried again after this


def resolver(server: str | None) -> dns.resolver.Resolver:
    """The system's resolver, or one that asks only ``server`` (HOST[:PORT], port 53 by default)."""
    if server is None:
        return dns.resolver.Resolver()
    try:
        host, port = split_host_port(server)
    except ResolveError as exc:
        raise ConfigError(f"dns_sd_server: {exc}") from None
    r = dns.resolver.Resolver(configure=False)
    r.nameservers, r.port = [host], port or 53
    return r


def lookup(name: str, r: dns.resolver.Resolver) -> tuple[list[Any], float]:
    """The name's SRV records as one file_sd group, and the seconds until the next lookup;
    ConfigError saying why not."""
    where = f"dns_sd {name}"
    try:
        answer = r.resolve(name, "SRV", lifetime=LIFETIME_S)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return [], EMPTY_S
    except dns.resolver.LifetimeTimeout:
        raise ConfigError(f"{where}: no answer within {LIFETIME_S:g} s") from None
    except dns.exception.DNSException as exc:
        raise ConfigError(f"{where}: {exc}") from None
    # a target of "." says the service is not there (RFC 2782); port 0 is no port to send to
    targets = sorted({f"{_host(str(rr.target))}:{rr.port}" for rr in answer if str(rr.target) != "." and rr.port})
    groups = [{"targets": targets}] if targets else []
    for _ in group_targets(groups, where):  # checked whole now: a bad answer is refused, not half taken
        pass
    return groups, min(max(float(answer.rrset.ttl), TTL_S[0]), TTL_S[1])


def _host(target: str) -> str:
    host = target.rstrip(".")
    return f"[{host}]" if ":" in host else host
