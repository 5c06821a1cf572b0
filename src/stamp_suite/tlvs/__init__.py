"""One module per TLV type: its wire layout, the reflector's rule and the sender's reading
(see :mod:`.base`).  Importing this package registers every type in :data:`REGISTRY`."""

from .access_report import AccessReport
from .base import PROCESSED, REGISTRY, ReadContext, ReflectContext, TlvValue, decode, unmapped_address
from .cos import ClassOfService
from .destination import DestinationNodeAddress
from .direct_measurement import DirectMeasurement
from .follow_up import FollowUpTelemetry
from .hmac_tlv import HmacTlv
from .location import Location, LocationSubType
from .micro_session import MicroSessionId
from .padding import ExtraPadding
from .return_path import LabelStackEntry, ReturnPath, ReturnPathSubType
from .timestamp_info import TimestampInformation

__all__ = [
    "PROCESSED", "REGISTRY", "ReadContext", "ReflectContext", "TlvValue", "decode", "unmapped_address",
    "AccessReport", "ClassOfService", "DestinationNodeAddress", "DirectMeasurement", "ExtraPadding",
    "FollowUpTelemetry", "HmacTlv", "LabelStackEntry", "Location", "LocationSubType", "MicroSessionId",
    "ReturnPath", "ReturnPathSubType", "TimestampInformation",
]
