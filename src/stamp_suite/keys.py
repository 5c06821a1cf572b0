"""Reading HMAC keys from files: one key, or a directory with one key file per SSID.

Every error names the file and what is wrong with it, never its content or a byte of it;
and a value given where a path belongs that looks like a key is not echoed either.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from .files import FileRefused, read_regular_file
from .wire.auth import KeyLoadError, KeyStore, parse_hex_key

_HEX = re.compile(r"[0-9a-fA-F]{16,}")
MAX_KEY_FILE = 4096  # octets: a key in hex, white space and a 0x; anything larger is not a key file
_HEX_IN_TEXT = re.compile(r"(?<![0-9a-zA-Z])(?:0[xX])?[0-9a-fA-F]{16,}(?![0-9a-zA-Z])")
HIDDEN = "<a value that looks like a hex key, not shown>"


def hide_keys(message: str) -> str:
    """``message`` with every run of 16 or more hex digits (what could be a key, or a part of
    one) replaced: for any error text that quotes what the user typed."""
    return _HEX_IN_TEXT.sub(HIDDEN, message)


def _shown(path: str | os.PathLike[str]) -> str:
    """The path as it may appear in a message: not at all if it could be a key (what
    parse_hex_key would take: hex digits, white space, a 0x or 0X in front)."""
    text = os.fspath(path)
    cleaned = "".join(text.split())
    if cleaned[:2] in ("0x", "0X"):
        cleaned = cleaned[2:]
    if _HEX.fullmatch(cleaned):
        return "(a value that looks like a hex key, not shown: give keys with --hmac-key, files with --hmac-key-file)"
    return text


def _credentials(path: str | os.PathLike[str], flag: str) -> str:
    """``$CREDENTIALS_DIRECTORY`` (or ``${...}``) in a key path: where systemd puts the files
    of ``LoadCredential=``, readable by the service's own (dynamic) user only.  The one
    variable expanded, so a ``$`` in any other path is taken as it is."""
    text = os.fspath(path)
    for form in ("${CREDENTIALS_DIRECTORY}", "$CREDENTIALS_DIRECTORY"):
        if text.startswith(form):
            where = os.environ.get("CREDENTIALS_DIRECTORY")
            if not where:
                raise KeyLoadError(f"{flag}: {text} names $CREDENTIALS_DIRECTORY, which is not set (systemd sets it "
                                   "for a unit with LoadCredential=)")
            return where + text[len(form):]
    return text


def load_key_file(path: str | os.PathLike[str], flag: str = "--hmac-key-file") -> bytes:
    """Read a hex key from a file that only its owner may read (keys are never logged)."""
    path = _credentials(path, flag)
    shown = _shown(path)
    try:
        raw, st = read_regular_file(path, MAX_KEY_FILE)
    except FileRefused as exc:
        raise KeyLoadError(f"{flag}: key file {shown} is {exc}") from None
    except OSError as exc:
        raise KeyLoadError(f"{flag}: cannot read key file {shown}: {exc.strerror}") from None
    if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyLoadError(f"key file {shown} is readable by group or others; run: chmod 600 {shown}")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise KeyLoadError(f"key file {shown}: not a hexadecimal key (only hex digits and white space "
                           "allowed)") from None
    return parse_hex_key(text, f"key file {shown}")


def load_key_directory(path: str | os.PathLike[str], default: bytes | None = None) -> KeyStore:
    """One file per SSID, named by the SSID in decimal (``1234`` or ``1234.key``)."""
    d = Path(_credentials(path, "--hmac-key-dir"))
    if not d.is_dir():
        raise KeyLoadError(f"--hmac-key-dir {_shown(d)}: not a directory")
    keys: dict[int, bytes] = {}
    for entry in sorted(d.iterdir()):
        stem = entry.name.removesuffix(".key")
        if not stem.isdigit() or not entry.is_file():
            continue
        ssid = int(stem)
        if not 1 <= ssid <= 0xFFFF:
            raise KeyLoadError(f"key file {_shown(entry)}: SSID {ssid} is outside 1..65535")
        keys[ssid] = load_key_file(entry, "--hmac-key-dir")
    if not keys:
        raise KeyLoadError(f"--hmac-key-dir {_shown(d)}: no key files named <SSID> or <SSID>.key")
    return KeyStore(default, keys)
