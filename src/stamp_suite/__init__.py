"""stamp-suite: STAMP (RFC 8762, 8972, 9503, 9534) Session-Sender and Session-Reflector."""

__version__ = "0.1.0"
