"""Turn validated :class:`Settings` into the engines' configurations and keys."""

from __future__ import annotations

import ipaddress

from .config import ConfigError, Settings
from .net.clock import ClockState
from .net.local import LocalAddresses
from .reflector.engine import ClockDescription, ReflectorConfig
from .sender.engine import SenderConfig
from .keys import load_key_directory, load_key_file
from .wire.auth import KeyLoadError, KeyStore, parse_hex_key
from .wire.timestamp import ErrorEstimate, TimestampFormat
from .tlvs import (AccessReport, ClassOfService, DestinationNodeAddress, DirectMeasurement, FollowUpTelemetry,
                   Location, MicroSessionId, ReturnPath, TimestampInformation, TlvValue)


def load_keys(s: Settings) -> KeyStore:
    try:
        default = None
        if s.hmac_key:
            default = parse_hex_key(s.hmac_key)
        elif s.hmac_key_file:
            default = load_key_file(s.hmac_key_file)
        if s.hmac_key_dir:
            return load_key_directory(s.hmac_key_dir, default)
        return KeyStore(default)
    except KeyLoadError as exc:
        raise ConfigError(str(exc)) from None


def timestamp_format(s: Settings) -> TimestampFormat:
    return TimestampFormat.PTP if s.clock_source == "PTP" else TimestampFormat.NTP


def error_estimate(s: Settings, clock: ClockState) -> ErrorEstimate:
    """The measured clock state, unless the operator states it (--clock-synchronized, --error-*)."""
    measured = clock.error_estimate(timestamp_format(s))
    return ErrorEstimate(
        measured.synchronized if s.clock_synchronized is None else s.clock_synchronized,
        timestamp_format(s),
        measured.scale if s.error_scale is None else s.error_scale,
        measured.multiplier if s.error_multiplier is None else s.error_multiplier)


def clock_description(s: Settings, clock: ClockState) -> ClockDescription:
    """What a reflector says about its clock, from the kernel's state and the operator's overrides."""
    return ClockDescription(error_estimate(s, clock), clock.sync_source, clock.tai_offset_s)


def reflector_config(s: Settings, clock: ClockState, keys: KeyStore, srv6_unavailable: str | None) -> ReflectorConfig:
    """``srv6_unavailable``: why the reflector's socket cannot send an SRH (UdpEndpoint), or None."""
    return ReflectorConfig(
        authenticated=s.authenticated, keys=keys, stateful=s.stateful_reflector, tlv_mode=s.tlv_mode,
        verify_tlv_hmac=s.verify_tlv_hmac, timestamp_format=timestamp_format(s), tai_offset_s=clock.tai_offset_s,
        error_estimate=error_estimate(s, clock), sync_source=clock.sync_source, local_addr=s.local_addr,
        cos_allowed_dscp=frozenset(s.cos_allowed_dscp) if s.cos_allowed_dscp is not None else None,
        member_link_id=s.reflector_member_link_id,
        allowed_ssids=frozenset(s.allowed_ssids) if s.allowed_ssids is not None else None,
        return_address_allow=tuple(ipaddress.ip_network(p, strict=False) for p in s.return_address_allow),
        return_srv6_allow=tuple(ipaddress.IPv6Network(p, strict=False) for p in s.return_srv6_allow),
        srv6_unavailable=srv6_unavailable, own_address=LocalAddresses(),
        session_timeout_s=s.session_timeout, max_sessions=s.max_sessions,
        accept_zero_multiplier=s.accept_zero_multiplier, answer_short_packets=not s.drop_short_packets,
        max_pps=s.max_pps, max_pps_burst=s.max_pps_burst)


def sender_tlvs(s: Settings) -> tuple[TlvValue, ...]:
    tlvs: list[TlvValue] = []
    if s.cos:
        tlvs.append(ClassOfService(s.dscp))
    if s.location:
        tlvs.append(Location.request())
    if s.timestamp_info:
        tlvs.append(TimestampInformation())
    if s.direct_measurement:
        tlvs.append(DirectMeasurement())
    if s.follow_up_telemetry:
        tlvs.append(FollowUpTelemetry())
    if s.access_report is not None:
        tlvs.append(AccessReport(s.access_report, s.access_return_code))
    if s.dest_node_addr:
        tlvs.append(DestinationNodeAddress(ipaddress.ip_address(s.dest_node_addr)))
    rp = return_path(s)
    if rp is not None:
        tlvs.append(rp)
    if s.micro_session_id is not None:
        tlvs.append(MicroSessionId(s.micro_session_id, 0))
    return tuple(tlvs)


def return_path(s: Settings) -> ReturnPath | None:
    if s.return_path_cc is None and not (s.return_address or s.return_sr_mpls_labels or s.return_srv6_sids):
        return None
    rp = ReturnPath(
        control_code=s.return_path_cc,
        return_address=ipaddress.ip_address(s.return_address) if s.return_address else None,
        sr_mpls_labels=ReturnPath.label_stack(list(s.return_sr_mpls_labels)) if s.return_sr_mpls_labels else None,
        srv6_segments=tuple(ipaddress.IPv6Address(x) for x in s.return_srv6_sids) if s.return_srv6_sids else None)
    rp.validate_for_sending()
    return rp


def sender_config(s: Settings, clock: ClockState, keys: KeyStore, windows_ns: tuple[int, ...] = (),
                  skip_missed: bool = False) -> SenderConfig:
    """The engine's configuration: packets, TLVs, keys, the schedule and its timers."""
    ssid = s.ssid or 0
    key = keys.key_for(ssid)
    if s.authenticated and key is None:
        raise ConfigError(f"no HMAC key for SSID {ssid}")
    try:
        return SenderConfig(
            authenticated=s.authenticated, key=key, ssid=ssid, timestamp_format=timestamp_format(s),
            tai_offset_s=clock.tai_offset_s, error_estimate=error_estimate(s, clock), tlvs=sender_tlvs(s),
            padding=s.padding, hmac_tlv=s.hmac_tlv, timeout_ns=int(s.timeout * 1e9),
            access_report_timer_ns=int(s.access_report_timer * 1e9), access_report_retries=s.access_report_retries,
            count=s.count, duration_ns=int(s.max_runtime * 1e9), interval_ns=max(1, int(s.send_delay * 1e6)),
            in_flight=s.window,
            report_interval_ns=int(s.report_interval * 1e9), windows_ns=windows_ns, skip_missed=skip_missed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
