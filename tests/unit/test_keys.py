"""Keys load as docs/security.md says, and an error about one never shows key material."""

import os

import pytest

from stamp_suite.keys import load_key_directory, load_key_file
from stamp_suite.wire.auth import KeyLoadError, parse_hex_key


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


def test_no_error_quotes_a_value_that_could_be_a_key():
    """issue 34: --ssid, --return-address, -r or a misspelt --hmac_key given a key: the
    error says what is wrong without the value."""
    from stamp_suite.keys import HIDDEN, hide_keys
    key = "00112233445566778899aabbccddeeff"
    assert hide_keys(f"unrecognized arguments: --hmac_key {key}") == f"unrecognized arguments: --hmac_key {HIDDEN}"
    assert hide_keys(f"'0x{key}' is not an integer") == f"'{HIDDEN}' is not an integer"
    assert hide_keys("fe80::1 port 862, 2001:db8::1, /etc/stamp/site-a.key") == \
        "fe80::1 port 862, 2001:db8::1, /etc/stamp/site-a.key"  # addresses and names stay


def test_a_key_file_must_be_a_small_regular_file(tmp_path):
    """issue 34: a FIFO where the key file belongs hung the program in open() for good."""
    fifo = tmp_path / "k"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(KeyLoadError, match="is not a regular file"):
        load_key_file(fifo)  # at once: nobody will ever write to it
    big = tmp_path / "big"
    big.write_text("00" * 16 + " " * 5000)
    os.chmod(big, 0o600)
    with pytest.raises(KeyLoadError, match=r"too large \(at most 4,096\)"):
        load_key_file(big)
    with pytest.raises(KeyLoadError, match="is not a regular file"):
        load_key_file("/dev/zero")
