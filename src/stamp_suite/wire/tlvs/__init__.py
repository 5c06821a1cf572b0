"""One module per TLV family; importing this package registers every typed TLV."""

from .access_report import AccessReport
from .cos import ClassOfService
from .destination import DestinationNodeAddress
from .direct_measurement import DirectMeasurement
from .follow_up import FollowUpTelemetry
from .hmac_tlv import HmacTlv
from .location import Location, LocationSubType
from .micro_session import MicroSessionId
from .padding import ExtraPadding
from .return_path import LabelStackEntry, ReturnPath, ReturnPathSubType
from .timestamp_info import SyncSource, TimestampInformation, TimestampMethod

__all__ = [
    "AccessReport", "ClassOfService", "DestinationNodeAddress", "DirectMeasurement", "ExtraPadding",
    "FollowUpTelemetry", "HmacTlv", "LabelStackEntry", "Location", "LocationSubType", "MicroSessionId",
    "ReturnPath", "ReturnPathSubType", "SyncSource", "TimestampInformation", "TimestampMethod",
]
