"""SIGHUP reloads a running reflector (issue 34): keys, allow-lists and limits read again as one
transaction; a broken file keeps the running settings, said in one line; sessions carry on."""

import os
import signal

import pytest
from helpers import ReflectorProcess, send

KEY1, KEY2 = "11" * 16, "22" * 16


def next_reload_line(refl: ReflectorProcess) -> str:
    """The reflector's next stderr line about a reload (other notes skipped)."""
    return refl.next_stderr_line("reload")


def write(path, text: str) -> None:
    path.write_text(text)
    os.chmod(path, 0o600)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sighup_rereads_keys_and_allow_lists_and_a_broken_file_changes_nothing(tmp_path, workers):
    key, cfg = tmp_path / "key", tmp_path / "reflector.toml"
    write(key, KEY1)
    write(cfg, f'auth_mode = "A"\nhmac_key_file = "{key}"\nallowed_ssids = [1]\n')
    with ReflectorProcess("--config", str(cfg), "--workers", workers) as refl:
        def works(hex_key: str, ssid: int) -> bool:
            res = send(refl, "-A", "A", "--hmac-key", hex_key, "--ssid", str(ssid), "-L", "0.3", count=3)
            return "Packets received: 3" in res.stdout

        assert works(KEY1, 1) and not works(KEY1, 2) and not works(KEY2, 1)
        write(key, KEY2)  # the key rotated, and SSID 2 allowed
        write(cfg, f'auth_mode = "A"\nhmac_key_file = "{key}"\nallowed_ssids = [1, 2]\nmax_pps = 500\n')
        refl.proc.send_signal(signal.SIGHUP)
        assert next_reload_line(refl) == "note: reloaded: allowed_ssids, keys, max_pps"
        assert works(KEY2, 2) and works(KEY2, 1) and not works(KEY1, 1)

        write(cfg, 'allowed_ssids = [1, 2\n')  # broken TOML
        refl.proc.send_signal(signal.SIGHUP)
        line = next_reload_line(refl)
        assert line.startswith(f"note: reload refused, the running settings kept: --config {cfg}:"), line
        assert works(KEY2, 2)

        write(cfg, f'auth_mode = "A"\nhmac_key_file = "{key}"\nallowed_ssids = [2]\nstateful_reflector = true\n')
        write(key, "not a key")
        refl.proc.send_signal(signal.SIGHUP)  # a key file that does not parse: nothing applied
        assert "reload refused" in next_reload_line(refl) and works(KEY2, 1)
        write(key, KEY2)
        refl.proc.send_signal(signal.SIGHUP)
        assert next_reload_line(refl) == ("note: reloaded: allowed_ssids, max_pps; stateful_reflector changes "
                                          "only at a restart")
        assert works(KEY2, 2) and not works(KEY2, 1)
        code, out, _ = refl.stop()
    assert code == 0 and "Packets received:" in out  # still a clean stop, with its totals
