"""The Redis engine's pieces that case files cannot show: parsing, refusals inside facts,
and the shell and awk programs the operations ship (run here with the local sh and awk)."""

import shutil
import subprocess

import pytest

from facts.redis import RedisFingerprint, RedisKeyCounts, RedisPersistence, unquote
from operations.redis import BATCH_AWK, SUM_AWK, SWAP_SCRIPT
from tests.whole_output import read_whole

STACK = {"dir": "/srv/layra"}


def awk(program: str, text: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["awk", *args, program], input=text, capture_output=True, text=True)


def test_unquote_reverses_redis_cli_quoting_including_escaped_bytes():
    assert unquote(r'"a b \"q\" \\ \n"') == 'a b "q" \\ \n'
    assert unquote(r'"caf\xc3\xa9"') == "café"
    assert unquote("plain") == "plain"


def test_the_fingerprint_of_the_same_output_is_the_same_and_counts_the_sample():
    output = ["--- layra:keys ---", "2", "ab12  -", "--- layra:sample ---", '"string 11"', '"hash 22"']
    first, second = RedisFingerprint().process(read_whole(output)), RedisFingerprint().process(read_whole(list(output)))
    assert first == second
    assert first["dbsize"] == 2 and first["keys_sha256"] == "ab12" and first["sample"] == 2


def test_a_different_value_in_the_sample_changes_the_fingerprint():
    base = ["--- layra:keys ---", "1", "ab12  -", "--- layra:sample ---"]
    one = RedisFingerprint().process(read_whole(base + ['"string 11"']))
    other = RedisFingerprint().process(read_whole(base + ['"string 12"']))
    assert one["keys_sha256"] == other["keys_sha256"]
    assert one["sample_sha256"] != other["sample_sha256"]


def test_the_fingerprint_fails_on_an_error_reply_instead_of_hashing_it():
    output = ["--- layra:keys ---", "1", "ab12  -", "--- layra:sample ---", "(error) NOSCRIPT scripts are disabled"]
    with pytest.raises(ValueError, match="NOSCRIPT"):
        RedisFingerprint().process(read_whole(output))


def test_persistence_fails_when_the_server_refuses_the_password():
    with pytest.raises(ValueError, match="NOAUTH"):
        RedisPersistence().process(read_whole(["(error) NOAUTH Authentication required."] * 5))


def test_key_counts_refuse_a_pattern_on_two_lines_before_running_anything():
    with pytest.raises(ValueError, match="one-line key patterns"):
        RedisKeyCounts().command(STACK, ["user:*", "a\nb"])


def test_key_counts_refuse_a_bare_string_for_patterns():
    with pytest.raises(ValueError):
        RedisKeyCounts().command(STACK, "user:*")


def test_scanned_keys_become_unlink_lines_of_the_batch_size():
    keys = '"a"\n"b c"\n"d\\"q"\n"e"\n"f"\n'
    result = awk(BATCH_AWK, keys, "-v", "n=2")
    assert result.stdout.splitlines() == ['UNLINK "a" "b c"', 'UNLINK "d\\"q" "e"', 'UNLINK "f"']


def test_no_scanned_key_gives_no_unlink_line():
    assert awk(BATCH_AWK, "", "-v", "n=500").stdout == ""


def test_unlink_replies_add_up_to_the_number_of_keys_removed():
    result = awk(SUM_AWK, "(integer) 500\n(integer) 500\n(integer) 234\n")
    assert (result.returncode, result.stdout.strip()) == (0, "1234")


def test_an_error_reply_among_unlink_replies_fails_and_is_shown():
    result = awk(SUM_AWK, "(integer) 500\n(error) NOAUTH Authentication required.\n")
    assert result.returncode == 1
    assert "NOAUTH" in result.stderr


@pytest.mark.skipif(not shutil.which("sh"), reason="needs a POSIX sh")
def test_the_swap_script_is_valid_posix_shell():
    assert subprocess.run(["sh", "-n", "-c", SWAP_SCRIPT], capture_output=True).returncode == 0


def test_the_swap_script_reverts_to_the_safety_copies(tmp_path):
    (tmp_path / "dump.rdb").write_text("new")
    (tmp_path / "dump.rdb.pre-restore").write_text("old")
    (tmp_path / "appendonlydir").mkdir()
    (tmp_path / "appendonlydir.pre-restore").mkdir()
    (tmp_path / "appendonlydir.pre-restore" / "appendonly.aof.manifest").write_text("old aof")
    run = subprocess.run(["sh", "-c", SWAP_SCRIPT, "sh", "revert", str(tmp_path), "dump.rdb", "yes",
                          "appendonlydir", "appendonly.aof"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "dump.rdb").read_text() == "old"
    assert (tmp_path / "appendonlydir" / "appendonly.aof.manifest").read_text() == "old aof"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["appendonlydir", "dump.rdb"]


def test_reverting_when_there_was_no_data_before_leaves_none(tmp_path):
    (tmp_path / "dump.rdb").write_text("new")
    run = subprocess.run(["sh", "-c", SWAP_SCRIPT, "sh", "revert", str(tmp_path), "dump.rdb", "no",
                          "appendonlydir", "appendonly.aof"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert list(tmp_path.iterdir()) == []
