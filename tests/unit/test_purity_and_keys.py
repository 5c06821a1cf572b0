"""The protocol core stays pure (no sockets, clocks or threads); keys load as documented."""

import ast
import ipaddress
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import stamp_suite
from stamp_suite.keys import load_key_directory, load_key_file
from stamp_suite.tlvs import (
    AccessReport,
    ClassOfService,
    DestinationNodeAddress,
    DirectMeasurement,
    ExtraPadding,
    FollowUpTelemetry,
    HmacTlv,
    LabelStackEntry,
    Location,
    MicroSessionId,
    ReturnPath,
    TimestampInformation,
    decode,
)
from stamp_suite.wire.auth import KeyLoadError, parse_hex_key
from stamp_suite.wire.tlv import parse_tlvs

PKG = Path(stamp_suite.__file__).parent
# The protocol core: bytes, TLVs and both engines, with their statistics.  Everything else
# (sockets, clocks, files, threads, processes) is the I/O layer's.
PURE_MODULES = {"stamp_suite.wire", "stamp_suite.tlvs", "stamp_suite.reflector.engine", "stamp_suite.reflector.sessions",
                "stamp_suite.reflector.counters", "stamp_suite.reflector.loop_guard", "stamp_suite.reflector.tlv_procedure", "stamp_suite.sender.engine", "stamp_suite.sender.events",
                "stamp_suite.sender.stats", "stamp_suite.sender.distribution"}
FORBIDDEN = {"socket", "asyncio", "time", "threading", "selectors", "os", "pathlib", "mmap", "subprocess",
             "multiprocessing", "io", "shutil", "tempfile", "signal", "ctypes"}


def _module(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _pure(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in PURE_MODULES)


PURE = sorted(p for p in PKG.rglob("*.py") if _pure(_module(p)))


def _imports(path: Path):
    """Every module ``path`` imports, relative imports resolved to absolute names."""
    here = _module(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            yield base
            yield from (f"{base}.{a.name}" for a in node.names)


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(PKG)))
def test_core_does_no_io(path):
    tree = ast.parse(path.read_text())
    for name in _imports(path):
        top = name.split(".")[0]
        assert top not in FORBIDDEN, f"{path.name} imports {name}"
        if top == "stamp_suite" and not _pure(name) and name not in ("stamp_suite", "stamp_suite.reflector",
                                                                     "stamp_suite.sender"):
            # "from ..x import y" names y too: it may be a value of a pure module, not a module
            parent = name.rsplit(".", 1)[0]
            assert _pure(parent), f"{path.name} imports {name}, which is not part of the protocol core"
    calls = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    assert "open" not in calls and "__import__" not in calls, f"{path.name} opens files or imports by name"


def test_the_purity_check_sees_relative_imports():
    """The check itself: a relative import of the I/O layer from an engine is caught."""
    import tempfile
    with tempfile.TemporaryDirectory(dir=PKG / "reflector") as d:
        probe = Path(d) / "probe.py"
        probe.write_text("from ...net import udp\n")
        names = list(_imports(probe))
    assert "stamp_suite.net.udp" in names


def test_no_platform_constants_outside_net():
    for path in PKG.rglob("*.py"):
        if "net" in path.relative_to(PKG).parts:
            continue
        text = path.read_text()
        for name in ("IP_RECVTTL", "IP_PKTINFO", "SO_TIMESTAMPNS", "IPV6_RECVPKTINFO", "MSG_ERRQUEUE"):
            assert name not in text, f"{name} used in {path}"


def test_key_errors_never_show_key_material(tmp_path):
    key = "00112233445566778899aabbccddeeff"
    with pytest.raises(KeyLoadError) as exc:  # the key given where a path belongs
        load_key_file(key)
    assert key not in str(exc.value) and "looks like a hex key" in str(exc.value)
    f = tmp_path / "k"
    f.write_bytes(b"0011223344556677\xe9899aabbccddeeff\n")  # one non-ASCII byte
    os.chmod(f, 0o600)
    with pytest.raises(KeyLoadError) as exc:
        load_key_file(f)
    message = str(exc.value)
    assert str(f) in message and "0011" not in message and "xe9" not in message and "position" not in message
    f.write_text("0011223344556677zz99aabbccddeeff\n")
    with pytest.raises(KeyLoadError) as exc:
        load_key_file(f)
    assert "0011" not in str(exc.value)


def test_hex_keys():
    assert parse_hex_key("0x" + "ab" * 16) == b"\xab" * 16
    with pytest.raises(KeyLoadError):
        parse_hex_key("ab" * 8)  # too short
    with pytest.raises(KeyLoadError):
        parse_hex_key("zz" * 16)


def test_key_file_and_directory(tmp_path):
    f = tmp_path / "k"
    f.write_text("00112233445566778899aabbccddeeff\n")
    os.chmod(f, 0o600)
    assert load_key_file(f) == bytes.fromhex("00112233445566778899aabbccddeeff")
    os.chmod(f, 0o640)
    with pytest.raises(KeyLoadError, match="chmod 600"):
        load_key_file(f)
    d = tmp_path / "keys"
    d.mkdir()
    for ssid, byte in ((7, "11"), (8, "22")):
        p = d / (f"{ssid}.key" if ssid == 8 else str(ssid))
        p.write_text(byte * 16)
        os.chmod(p, 0o600)
    store = load_key_directory(d, default=b"d" * 16)
    assert store.key_for(7) == b"\x11" * 16 and store.key_for(8) == b"\x22" * 16 and store.key_for(9) == b"d" * 16
    with pytest.raises(KeyLoadError):
        load_key_directory(tmp_path / "missing")


def test_key_paths_under_systemd_credentials(tmp_path, monkeypatch):
    """LoadCredential= puts key files in $CREDENTIALS_DIRECTORY; the one variable expanded."""
    (tmp_path / "lon1.key").write_text("00112233445566778899aabbccddeeff")
    os.chmod(tmp_path / "lon1.key", 0o400)  # as systemd leaves them
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    for form in ("$CREDENTIALS_DIRECTORY/lon1.key", "${CREDENTIALS_DIRECTORY}/lon1.key"):
        assert load_key_file(form) == bytes.fromhex("00112233445566778899aabbccddeeff")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(KeyLoadError, match="LoadCredential="):
        load_key_file("$CREDENTIALS_DIRECTORY/lon1.key")
    with pytest.raises(KeyLoadError, match=r"\$HOME/k: No such file"):
        load_key_file("$HOME/k")  # any other variable is part of the name


u8, u16, u32 = st.integers(0, 255), st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1)
ipv4 = st.builds(ipaddress.IPv4Address, u32)
ipv6 = st.builds(ipaddress.IPv6Address, st.integers(0, 2**128 - 1))
TYPED = st.one_of(
    st.builds(ExtraPadding, st.binary(max_size=64)),
    st.builds(Location.request, st.booleans(), st.booleans(), st.booleans()),
    st.builds(TimestampInformation, u8, u8, u8, u8, st.just(b"")),
    st.builds(ClassOfService, st.integers(0, 63), st.integers(0, 63), st.integers(0, 3), st.integers(0, 3)),
    st.builds(DirectMeasurement, u32, u32, u32),
    st.builds(AccessReport, st.integers(0, 15), u8),
    st.builds(FollowUpTelemetry, u32, st.integers(0, 2**64 - 1), u8),
    st.builds(HmacTlv, st.binary(min_size=16, max_size=16)),
    st.builds(DestinationNodeAddress, st.one_of(ipv4, ipv6)),
    st.builds(ReturnPath, control_code=u32),
    st.builds(lambda a, labels: ReturnPath(return_address=a, sr_mpls_labels=tuple(
        LabelStackEntry(lab, tc, s, ttl) for lab, tc, s, ttl in labels)),
        st.one_of(ipv4, ipv6), st.lists(st.tuples(st.integers(0, 0xFFFFF), st.integers(0, 7), st.booleans(), u8),
                                        min_size=1, max_size=4)),
    st.builds(lambda segs: ReturnPath(srv6_segments=tuple(segs)), st.lists(ipv6, min_size=1, max_size=3)),
    st.builds(MicroSessionId, u16, u16),
)


@given(TYPED)
def test_every_typed_tlv_round_trips(value):
    assert decode(parse_tlvs(value.to_tlv().to_bytes()).tlvs[0]) == value
