"""The Redis engine's pieces that case files cannot show: parsing, refusals inside facts,
and the shell and awk programs the operations ship, run here with the local sh and awk, and
facts/scripts/redis_copies.sh with this machine's redis-server (sandbox/up.sh installs
it) in a mount namespace made like the service's container: a private /tmp, and the data
directory a mount of its own, as a volume is."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from facts.redis import RedisFingerprint, RedisKeyCounts, RedisPersistence, unquote
from facts.shell import script
from operations.redis import BATCH_AWK, SUM_AWK
from tests.local_redis import redis_server, tool
from tests.whole_output import read_whole

STACK = {"dir": "/srv/layra"}
COPIES = script("redis_copies")


def awk(program: str, text: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["awk", *args, program], input=text, capture_output=True, text=True)


def test_unquote_reverses_redis_cli_quoting_including_escaped_bytes():
    assert unquote(r'"a b \"q\" \\ \n"') == 'a b "q" \\ \n'
    assert unquote(r'"caf\xc3\xa9"') == "café"
    assert unquote("plain") == "plain"


def test_the_fingerprint_of_the_same_output_is_the_same_and_counts_each_databases_sample():
    output = ["dbs 1 2", "db 1", "keys 2 ab12", '"string 11"', '"hash 22"', "values 2 ee11", "db 2", "keys 1 cd34",
              '"string 33"', "values 1 ff22"]
    first, second = RedisFingerprint().process(read_whole(output)), RedisFingerprint().process(read_whole(list(output)))
    assert first == second
    assert first["dbsize"] == 3
    assert first["databases"]["1"]["keys_sha256"] == "ab12" and first["databases"]["1"]["sample"] == 2
    assert first["databases"]["2"]["dbsize"] == 1 and first["databases"]["2"]["values_sha256"] == "ff22"


def test_a_different_value_in_the_sample_changes_the_fingerprint():
    base = ["dbs 0", "db 0", "keys 1 ab12"]
    one = RedisFingerprint().process(read_whole([*base, '"string 11"', "values 1 ee11"]))["databases"]["0"]
    other = RedisFingerprint().process(read_whole([*base, '"string 12"', "values 1 ee12"]))["databases"]["0"]
    assert one["keys_sha256"] == other["keys_sha256"]
    assert one["sample_sha256"] != other["sample_sha256"]


def test_the_fingerprint_fails_on_an_error_reply_instead_of_hashing_it():
    output = ["dbs 0", "db 0", "keys 1 ab12", "(error) NOSCRIPT scripts are disabled"]
    with pytest.raises(ValueError, match="NOSCRIPT"):
        RedisFingerprint().process(read_whole(output))


@pytest.mark.parametrize("values", [[], ["values 2 ee11"]], ids=["no values line", "fewer values than keys"])
def test_the_fingerprint_fails_where_not_every_keys_value_was_read(values):
    output = ["dbs 0", "db 0", "keys 3 ab12", '"string 11"', *values]
    with pytest.raises(ValueError, match="3 keys listed, their values read"):
        RedisFingerprint().process(read_whole(output))


def test_the_fingerprint_fails_when_a_database_it_named_printed_no_key_line():
    with pytest.raises(ValueError, match="database 3"):
        RedisFingerprint().process(read_whole(["dbs 3", "db 3"]))


def test_the_fingerprint_fails_on_output_that_does_not_start_with_the_databases_read():
    with pytest.raises(ValueError, match="unexpected output"):
        RedisFingerprint().process(read_whole(["(error) NOAUTH Authentication required."]))


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


def test_the_copies_script_is_valid_posix_shell():
    assert subprocess.run(["sh", "-n", "-c", COPIES], capture_output=True).returncode == 0


def data_of(directory: Path, *options: str) -> dict:
    """The keys and values a redis-server started on ``directory`` loads."""
    with redis_server(directory, "--dbfilename", "dump.rdb", *options) as cli:
        return {key: cli("GET", key) for key in cli("--raw", "KEYS", "*").split()}


def write_data(directory: Path, values: dict, *options: str):
    directory.mkdir(parents=True, exist_ok=True)
    with redis_server(directory, "--dbfilename", "dump.rdb", *options) as cli:
        for key, value in values.items():
            assert cli("SET", key, value) == "OK"
        assert cli("SAVE") == "OK"


AOF = ("--appendonly", "yes", "--appenddirname", "appendonlydir", "--appendfilename", "appendonly.aof")
SHA = "ab" * 32


def files(directory: Path) -> dict:
    """Every file under ``directory`` (any left behind included) and its bytes."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def snapshot(tmp_path: Path, values: dict) -> bytes:
    """An RDB file holding ``values``, as the dump writes it."""
    write_data(tmp_path / "snapshot", values)
    return (tmp_path / "snapshot" / "dump.rdb").read_bytes()


# In a mount namespace of its own: /tmp private (the script's socket and log are there),
# the data directory bound on itself (a mount point, as a volume in the container is).
CONTAINER_LIKE = ('data=$1; shift; cd "$data" && mount -t tmpfs layra-tmp /tmp && mkdir -p "$data" && '
                  'mount --no-canonicalize --bind . "$data" && exec sh -c "$COPIES" sh "$@"')


def copies(data: Path, mode: str, *args: str, rdb: bytes = b"", aof: str = "no") -> subprocess.CompletedProcess:
    tool("redis-server")
    unshare = ["unshare", "--mount", *([] if os.geteuid() == 0 else ["--map-root-user"])]
    return subprocess.run([*unshare, "sh", "-c", CONTAINER_LIKE, "sh", str(data),
                           mode, str(data), "dump.rdb", aof, "appendonlydir", "appendonly.aof", *args],
                          input=rdb, capture_output=True, env={**os.environ, "COPIES": COPIES}, timeout=120)


def test_staging_loads_the_snapshot_beside_the_live_data_and_marks_it_with_the_files_checksum(tmp_path):
    data = tmp_path / "data"
    write_data(data, {"old": "1"})
    live = files(data)
    run = copies(data, "stage", SHA, rdb=snapshot(tmp_path, {"a": "1", "b": "two"}))
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout.decode() == f"staged 2 keys in {data}/.layra-staged\n"
    assert {name: body for name, body in files(data).items() if not name.startswith(".layra-staged/")} == live
    assert (data / ".layra-staged" / ".snapshot").read_text() == SHA + "\n"
    assert data_of(data / ".layra-staged") == {"a": "1", "b": "two"}


def test_with_aof_the_staged_copy_holds_the_aof_redis_7_loads_instead_of_the_rdb(tmp_path):
    data = tmp_path / "data"
    write_data(data, {"old": "1"}, *AOF)
    run = copies(data, "stage", SHA, rdb=snapshot(tmp_path, {"a": "1"}), aof="yes")
    assert run.returncode == 0, run.stderr.decode()
    assert data_of(data / ".layra-staged", *AOF) == {"a": "1"}


def test_a_snapshot_that_does_not_load_stages_nothing_and_changes_nothing(tmp_path):
    data = tmp_path / "data"
    write_data(data, {"old": "1"}, *AOF)
    before = files(data)
    run = copies(data, "stage", SHA, rdb=b"REDIS0099 not an rdb", aof="yes")
    assert run.returncode == 1
    assert "the snapshot does not load in this service's redis-server" in run.stderr.decode()
    assert files(data) == before


def test_the_swap_moves_the_live_data_aside_and_the_staged_copy_in(tmp_path):
    data = tmp_path / "data"
    write_data(data, {"old": "1"}, *AOF)
    live = files(data)
    assert copies(data, "stage", SHA, rdb=snapshot(tmp_path, {"a": "1"}), aof="yes").returncode == 0
    run = copies(data, "swap", SHA, aof="yes")
    assert run.returncode == 0, run.stderr.decode()
    assert sorted(p.name for p in data.iterdir()) == [".layra-displaced", "appendonlydir", "dump.rdb"]
    assert files(data / ".layra-displaced") == live
    assert data_of(data, *AOF) == {"a": "1"}


def test_the_swap_touches_nothing_where_no_copy_of_that_snapshot_is_staged(tmp_path):
    data = tmp_path / "data"
    write_data(data, {"old": "1"})
    assert copies(data, "stage", SHA, rdb=snapshot(tmp_path, {"a": "1"})).returncode == 0
    before = files(data)
    run = copies(data, "swap", "cd" * 32)
    assert run.returncode == 3
    assert "no copy of the snapshot is staged" in run.stderr.decode()
    assert files(data) == before


def test_the_swap_refuses_to_replace_a_displaced_copy_no_snapshot_keeps_yet(tmp_path):
    data = tmp_path / "data"
    write_data(data, {"old": "1"})
    (data / ".layra-displaced").mkdir()
    (data / ".layra-displaced" / "dump.rdb").write_text("earlier")
    assert copies(data, "stage", SHA, rdb=snapshot(tmp_path, {"a": "1"})).returncode == 0
    before = files(data)
    run = copies(data, "swap", SHA)
    assert run.returncode == 1
    assert "keep it in a safety snapshot first" in run.stderr.decode()
    assert files(data) == before


def test_a_swap_then_a_revert_puts_the_previous_data_back(tmp_path):
    data = tmp_path / "data"
    write_data(data, {"old": "1"}, *AOF)
    assert copies(data, "stage", SHA, rdb=snapshot(tmp_path, {"a": "1"}), aof="yes").returncode == 0
    assert copies(data, "swap", SHA, aof="yes").returncode == 0
    run = copies(data, "revert", aof="yes")
    assert run.returncode == 0, run.stderr.decode()
    assert sorted(p.name for p in data.iterdir()) == ["appendonlydir", "dump.rdb"]
    assert data_of(data, *AOF) == {"old": "1"}


def test_reverting_when_there_was_no_data_before_leaves_none(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    assert copies(data, "stage", SHA, rdb=snapshot(tmp_path, {"a": "1"})).returncode == 0
    assert copies(data, "swap", SHA).returncode == 0
    assert copies(data, "revert").returncode == 0
    assert list(data.iterdir()) == []


def test_the_displaced_aof_is_served_without_writing_a_byte_of_it_and_then_dropped(tmp_path):
    data = tmp_path / "data"
    write_data(data, {"old": "1"}, *AOF)
    assert copies(data, "stage", SHA, rdb=snapshot(tmp_path, {"a": "1"}), aof="yes").returncode == 0
    assert copies(data, "swap", SHA, aof="yes").returncode == 0
    displaced = files(data / ".layra-displaced")
    serve = ('cd "$1" && mount -t tmpfs layra-tmp /tmp && mkdir -p "$1" && mount --no-canonicalize --bind . "$1" && '
             '(sh -c "$COPIES" sh serve "$1" dump.rdb yes appendonlydir appendonly.aof displaced &) && i=0 && '
             'until [ "$(redis-cli -s /tmp/layra-copy.sock ping 2>/dev/null)" = PONG ]; do i=$((i + 1)); '
             '[ "$i" -lt 300 ] || exit 1; sleep 0.1; done && redis-cli -s /tmp/layra-copy.sock get old && '
             'redis-cli -s /tmp/layra-copy.sock shutdown nosave')
    unshare = ["unshare", "--mount", *([] if os.geteuid() == 0 else ["--map-root-user"])]
    run = subprocess.run([*unshare, "sh", "-c", serve, "sh", str(data)], capture_output=True, text=True,
                         env={**os.environ, "COPIES": COPIES}, timeout=60)
    assert "1" in run.stdout.splitlines(), run.stderr  # the server logs to its stdout too
    assert files(data / ".layra-displaced") == displaced
    assert copies(data, "present", "displaced").stdout == b"present \n"
    assert copies(data, "drop").returncode == 0
    assert copies(data, "present", "displaced").stdout == b"absent\n"
    assert data_of(data, *AOF) == {"a": "1"}


def test_serving_a_copy_that_is_not_there_exits_3(tmp_path):
    (tmp_path / "data").mkdir()
    assert copies(tmp_path / "data", "serve", "staged").returncode == 3


def test_the_fingerprint_fails_when_a_database_it_named_was_not_read():
    with pytest.raises(ValueError, match="databases 1 2 named, 1 read"):
        RedisFingerprint().process(read_whole(["dbs 1 2", "db 1", "keys 1 ab12", '"string 11"']))


@pytest.mark.parametrize("program", [p for p in ("mawk", "gawk", "busybox") if shutil.which(p)] or ["awk"])
def test_unlink_lines_are_the_same_whatever_the_batch_and_the_awk(program):
    keys = "".join(f'"k{i}"\n' for i in range(7))
    prefix = [program, "awk"] if program == "busybox" else [program]
    for n, lines in ((1, 7), (3, 3), (7, 1), (100_000, 1)):
        run = subprocess.run([*prefix, "-v", f"n={n}", BATCH_AWK], input=keys, capture_output=True, text=True)
        assert run.stdout.splitlines() == ["UNLINK " + " ".join(f'"k{i}"' for i in chunk)
                                           for chunk in (range(7)[i:i + n] for i in range(0, 7, n))]
        assert len(run.stdout.splitlines()) == lines
