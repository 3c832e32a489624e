"""The MongoDB engine's pieces that case files cannot show: the exact tool flags (each
cited from MongoDB's documentation), the password's way into the tools, parsing, the
mongosh scripts (run under node with a fake server where node is installed), and the
sandbox's stand-in tools' refusals."""

import gzip
import importlib.util
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest

from facts.compose import Stack
from facts.mongo import (
    COPIES,
    DROP_JS,
    FINGERPRINT_JS,
    NAMES_JS,
    PING_JS,
    TOOL_SHIM,
    VERSIONS_JS,
    MongoFingerprint,
    MongoVersions,
    PartialFingerprint,
    copy_env,
    mongo_tool,
    same_data,
    summary,
)
from operations.mongo import SWAP_JS
from tests.whole_output import read_whole

ROOT = Path(__file__).parents[1]
STANDINS = ROOT / "sandbox/stack/release-1.0.0/standins/mongo-tools"
CASES = Path(__file__).parent / "operations"
SCRIPTS = {"ping": PING_JS, "versions": VERSIONS_JS, "fingerprint": FINGERPRINT_JS, "drop": DROP_JS,
           "names": NAMES_JS, "swap": SWAP_JS}
PASSWORD = "it's \"q\": #$x \\ `y`"


def load_standin():
    loader = SourceFileLoader("mongo_standin", str(STANDINS / "mongodump"))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


standin = load_standin()


def case_commands(op: str, case: str) -> str:
    commands = json.loads((CASES / f"mongo.{op}" / f"{case}.json").read_text())["commands"]
    return "\n".join(c if isinstance(c, str) else c["command"] for c in commands if not isinstance(c, list))


def tool_argvs(command: str, tool: str) -> list[list[str]]:
    """The arguments each `sh -c SHIM sh <tool> ...` in ``command`` passes to ``tool``."""
    words, found = shlex.split(command), []
    for i in range(len(words) - 1):
        if words[i] == "sh" and words[i + 1] == tool and words[i - 1] == TOOL_SHIM:
            end = next(j for j in range(i + 2, len(words) + 1) if j == len(words) or words[j] in ("<", "</dev/null"))
            found.append(words[i + 2:end])
    return found


# --- the exact flags -------------------------------------------------------------------

def test_mongodump_streams_one_database_as_a_gzipped_archive():
    [argv] = tool_argvs(case_commands("dumped", "streams_a_gzipped_archive_and_writes_its_descriptor"), "mongodump")
    assert argv == [
        # https://www.mongodb.com/docs/database-tools/mongodump/#std-option-mongodump.--username
        "--username=root",
        # https://www.mongodb.com/docs/database-tools/mongodump/#std-option-mongodump.--authenticationDatabase
        "--authenticationDatabase=admin",
        # https://www.mongodb.com/docs/database-tools/mongodump/#std-option-mongodump.--archive
        # (no file name: the archive goes to stdout)
        "--archive",
        # https://www.mongodb.com/docs/database-tools/mongodump/#std-option-mongodump.--gzip
        # (with --archive: the whole archive is compressed)
        "--gzip",
        # https://www.mongodb.com/docs/database-tools/mongodump/#std-option-mongodump.--db
        "--db=layra",
        # https://www.mongodb.com/docs/database-tools/mongodump/#std-option-mongodump.--excludeCollectionsWithPrefix
        # (the copies a restore keeps beside the live collections)
        "--excludeCollectionsWithPrefix=__restore__",
        "--excludeCollectionsWithPrefix=__pre_restore__",
    ]


def test_mongorestore_loads_the_archive_under_the_shadow_name():
    [argv] = tool_argvs(case_commands("shadow_loaded", "checks_the_checksum_then_restores_into_the_shadow_collections"),
                        "mongorestore")
    assert argv == [
        # https://www.mongodb.com/docs/database-tools/mongorestore/#std-option-mongorestore.--username
        "--username=root",
        # https://www.mongodb.com/docs/database-tools/mongorestore/#std-option-mongorestore.--authenticationDatabase
        "--authenticationDatabase=admin",
        # https://www.mongodb.com/docs/database-tools/mongorestore/#std-option-mongorestore.--archive
        # (no file name: the archive is read from stdin)
        "--archive",
        # https://www.mongodb.com/docs/database-tools/mongorestore/#std-option-mongorestore.--gzip
        "--gzip",
        # https://www.mongodb.com/docs/database-tools/mongorestore/#std-option-mongorestore.--drop
        "--drop",
        # https://www.mongodb.com/docs/database-tools/mongorestore/#std-option-mongorestore.--stopOnError
        "--stopOnError",
        # https://www.mongodb.com/docs/database-tools/mongorestore/#std-option-mongorestore.--nsInclude
        # (matches the archive's namespaces, before --nsFrom/--nsTo rename them)
        "--nsInclude=layra.*",
        # https://www.mongodb.com/docs/database-tools/mongorestore/#std-option-mongorestore.--nsFrom
        "--nsFrom=layra.*",
        # https://www.mongodb.com/docs/database-tools/mongorestore/#std-option-mongorestore.--nsTo
        # (within the same database: the swap is a rename within it)
        "--nsTo=layra.__restore__*",
    ]


def test_mongosh_runs_one_script_quietly_without_a_startup_file():
    argvs = tool_argvs(case_commands("swapped_in", "renames_the_collections_within_the_database_once_the_shadow_copy_matches"), "mongosh")
    # https://www.mongodb.com/docs/mongodb-shell/reference/options/#std-option-mongosh.--quiet
    # https://www.mongodb.com/docs/mongodb-shell/reference/options/#std-option-mongosh.--norc
    # https://www.mongodb.com/docs/mongodb-shell/reference/options/#std-option-mongosh.--eval
    assert argvs == [["--quiet", "--norc", "--eval", SWAP_JS]]


def test_the_tools_get_the_password_from_a_config_file_and_never_on_their_command_line():
    # https://www.mongodb.com/docs/database-tools/mongodump/#std-option-mongodump.--config
    # (100.3.0 and later: a YAML file whose `password:` the tool uses)
    assert "--config=/dev/fd/3" in TOOL_SHIM
    for op in ("dumped", "shadow_loaded", "swapped_in"):
        for case in sorted((CASES / f"mongo.{op}").glob("*.json")):
            commands = json.dumps(json.loads(case.read_text()).get("commands", []))
            assert "--password" not in commands and "mongodb://" not in commands, case.name


@pytest.mark.parametrize("op", ["dumped", "shadow_loaded", "swapped_in"])
def test_the_stand_ins_accept_every_tool_call_our_case_files_make(op):
    for case in sorted((CASES / f"mongo.{op}").glob("*.json")):
        commands = json.loads(case.read_text()).get("commands", [])
        text = "\n".join(c if isinstance(c, str) else c["command"] for c in commands if not isinstance(c, list))
        for tool in ("mongodump", "mongorestore", "mongosh"):
            for argv in tool_argvs(text, tool):
                extra = ["--config=/dev/fd/3"] if tool != "mongosh" else []
                standin.parse(tool, extra + argv)


def test_only_our_three_tools_can_be_run():
    with pytest.raises(ValueError, match="not a MongoDB tool"):
        mongo_tool(Stack("/srv/layra"), "mongodb", "root", None, "admin", "mongo", "--eval", "1")


def test_a_fingerprint_refuses_a_database_name_that_is_not_plain():
    with pytest.raises(ValueError, match="plain name"):
        MongoFingerprint().command({"dir": "/srv/layra"}, "layra.users")


# --- the password's way in (the shim, run here with the local sh) ----------------------

def run_shim(tmp_path, tool, *args, stdin="ARCHIVE BYTES"):
    fake = tmp_path / tool
    fake.write_text('#!/bin/sh\nprintf "argv:%s\\n" "$*"\nprintf "env:%s\\n" "${LAYRA_MONGO_PASSWORD-unset}"\n'
                    'case "$1" in --config=*) cat "${1#--config=}";; esac\nprintf "stdin:"; cat\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "LAYRA_MONGO_PASSWORD": PASSWORD}
    return subprocess.run(["sh", "-c", TOOL_SHIM, "sh", tool, *args], input=stdin, env=env,
                          capture_output=True, text=True, check=True).stdout


def test_the_shim_hands_the_password_over_as_yaml_on_fd_3_and_keeps_stdin(tmp_path):
    out = run_shim(tmp_path, "mongorestore", "--username=root", "--archive")
    argv, env, config, stdin = out.split("\n", 3)
    assert argv == "argv:--config=/dev/fd/3 --username=root --archive"
    assert env == "env:unset"  # the tool's environment no longer holds it
    assert standin.yaml_password(config) == PASSWORD
    assert stdin == "stdin:ARCHIVE BYTES"


def test_mongosh_reads_the_password_from_its_environment(tmp_path):
    out = run_shim(tmp_path, "mongosh", "--quiet", stdin="")
    assert out.splitlines()[:2] == ["argv:--quiet", f"env:{PASSWORD}"]


# --- parsing ---------------------------------------------------------------------------

FINGERPRINT = {"exists": True, "collections": {"users": {"count": 2, "md5": "aa"}}, "md5": "bb"}


def test_the_fingerprint_is_the_last_json_line_after_any_warning():
    output = ["Warning: Found ~/.mongorc.js, but not ~/.mongoshrc.js.", json.dumps(FINGERPRINT)]
    assert MongoFingerprint().process(read_whole(output)) == FINGERPRINT


def test_a_fingerprint_without_a_json_answer_is_an_error():
    with pytest.raises(ValueError, match="no JSON answer"):
        MongoFingerprint().process(read_whole(["MongoServerError: not authorized on layra"]))


def test_a_server_without_dbhash_refuses_a_fingerprint_of_counts_alone():
    counts_only = {"exists": True, "collections": {"users": {"count": 10, "md5": None}}, "md5": None}
    with pytest.raises(PartialFingerprint, match="no dbHash md5 for users .*counts alone cannot tell"):
        MongoFingerprint().process(read_whole([json.dumps(counts_only)]))


def test_a_different_md5_is_different_data_even_with_the_same_counts():
    other = {**FINGERPRINT, "collections": {"users": {"count": 2, "md5": "cc"}}, "md5": "dd"}
    assert same_data(FINGERPRINT, json.loads(json.dumps(FINGERPRINT)))
    assert not same_data(FINGERPRINT, other)
    assert not same_data(FINGERPRINT, None)


def test_summaries_count_collections_and_documents():
    assert summary(FINGERPRINT) == "1 collection, 2 documents"
    assert summary({"exists": False}) == "no database"


def test_versions_without_a_dump_tool_answer_leave_the_dump_version_empty():
    assert MongoVersions().process(read_whole(['{"server":"7.0.14"}'])) == {"server": "7.0.14", "dump": ""}


# --- the mongosh scripts ----------------------------------------------------------------

def test_every_script_names_itself_for_the_stand_in_mongosh():
    for name, js in SCRIPTS.items():
        marker = standin.MARKER.match(js.split("\n", 1)[0])
        assert marker and marker.group(1) == name and name in standin.SCRIPTS


def test_scripts_take_their_parameters_from_the_environment_only():
    for js in SCRIPTS.values():
        assert "layra" not in js.split("\n", 1)[1].replace("layra-script", "")


NODE = shutil.which("node")

# A fake mongosh world for node: databases of collections holding n documents (a
# collection's md5 is "md5-<n>"); collections named v_* are views; renaming FAIL_ON fails
# as a server error would. The swap only renames within a database.
FAKE_MONGOSH = """
const server = JSON.parse(process.env.SEED);
globalThis.print = (text) => console.log(text);
globalThis.EJSON = {stringify: (value) => JSON.stringify(value)};
const split = (ns) => [ns.slice(0, ns.indexOf(".")), ns.slice(ns.indexOf(".") + 1)];
function database(name) {
  const collections = () => server[name] || {};
  return {
    auth: () => ({ok: 1}),
    getCollectionInfos: () => Object.keys(collections())
      .map((each) => ({name: each, type: each.startsWith("v_") ? "view" : "collection"})),
    getCollectionNames: () => Object.keys(collections()),
    getCollection: (coll) => ({
      countDocuments: () => collections()[coll],
      drop: () => { delete collections()[coll]; return true; },
    }),
    runCommand: (command) => {
      if (command.dbHash === 1) {
        const hashes = Object.fromEntries(command.collections.map((c) => [c, `md5-${collections()[c]}`]));
        return {collections: hashes, md5: "md5-all", ok: 1};
      }
      if (name !== "admin" || !command.renameCollection || command.dropTarget !== true) throw new Error("unexpected");
      if (command.renameCollection === process.env.FAIL_ON) throw Object.assign(new Error("boom"), {code: 8000});
      const [fromDb, fromColl] = split(command.renameCollection), [toDb, toColl] = split(command.to);
      if (fromDb !== toDb) throw new Error("a rename across databases copies every document");
      server[toDb][toColl] = server[fromDb][fromColl];
      delete server[fromDb][fromColl];
      return {ok: 1};
    },
  };
}
globalThis.db = {getSiblingDB: database};
process.on("exit", () => console.log("STATE " + JSON.stringify(server)));
"""

COPIES_ENV = {"LAYRA_SHADOW_PREFIX": COPIES["shadow"], "LAYRA_ASIDE_PREFIX": COPIES["aside"]}


def run_script(tmp_path, js, seed, fail_on="", **env):
    path = tmp_path / "script.js"
    path.write_text(FAKE_MONGOSH + js)
    env = {**os.environ, "SEED": json.dumps(seed), "FAIL_ON": fail_on, **env}
    run = subprocess.run([NODE, str(path)], env=env, capture_output=True, text=True)
    lines = run.stdout.splitlines()
    state = json.loads(lines[-1].removeprefix("STATE "))
    return run.returncode, lines[:-1], run.stderr, {db: colls for db, colls in state.items() if colls}


def run_swap(tmp_path, seed, fail_on=""):
    return run_script(tmp_path, SWAP_JS, seed, fail_on, LAYRA_DB="layra", **COPIES_ENV)


SEED = {"layra": {"users": 2, "old": 1, "__restore__users": 3, "__restore__kbs": 1, "__pre_restore__junk": 9},
        "other": {"users": 5}}


def test_every_script_is_valid_javascript(tmp_path):
    for name, js in SCRIPTS.items():
        (tmp_path / f"{name}.js").write_text(js)
        check = subprocess.run([NODE, "--check", str(tmp_path / f"{name}.js")], capture_output=True, text=True)
        assert check.returncode == 0, (name, check.stderr)


def test_the_swap_renames_live_aside_and_the_shadow_in_within_the_database(tmp_path):
    status, out, _, state = run_swap(tmp_path, SEED)
    assert status == 0 and json.loads(out[-1]) == {"ok": 1, "moved": 2, "swapped": 2}
    assert state == {"layra": {"users": 3, "kbs": 1, "__pre_restore__users": 2, "__pre_restore__old": 1},
                     "other": {"users": 5}}


def test_a_failed_swap_puts_every_collection_back(tmp_path):
    status, _, stderr, state = run_swap(tmp_path, SEED, fail_on="layra.__restore__users")
    assert status != 0 and "layra was put back as it was" in stderr
    assert state == {"layra": {"users": 2, "old": 1, "__restore__users": 3, "__restore__kbs": 1},
                     "other": {"users": 5}}


def test_the_swap_refuses_a_database_with_nothing_staged(tmp_path):
    seed = {"layra": {"users": 2}}
    status, _, stderr, state = run_swap(tmp_path, seed)
    assert status != 0 and "holds no staged collection" in stderr and state == seed


@pytest.mark.parametrize("copy, collections", [
    ("live", {"users": {"count": 2, "md5": "md5-2"}, "old": {"count": 1, "md5": "md5-1"}}),
    ("shadow", {"users": {"count": 3, "md5": "md5-3"}, "kbs": {"count": 1, "md5": "md5-1"}}),
    ("aside", {"junk": {"count": 9, "md5": "md5-9"}}),
])
def test_a_fingerprint_reads_one_copy_named_without_its_prefix(tmp_path, copy, collections):
    status, out, _, _ = run_script(tmp_path, FINGERPRINT_JS, SEED, **copy_env("layra", copy))
    assert status == 0 and MongoFingerprint().process(read_whole(out)) == {
        "exists": True, "collections": collections, "md5": "md5-all"}


def test_a_copy_and_the_live_collections_with_the_same_documents_are_the_same_data(tmp_path):
    seed = {"layra": {"users": 2, "__restore__users": 2}}
    live, shadow = ({**copy_env("layra", copy)} for copy in ("live", "shadow"))
    answers = [MongoFingerprint().process(read_whole(run_script(tmp_path, FINGERPRINT_JS, seed, **env)[1]))
               for env in (live, shadow)]
    assert same_data(*answers)


def test_dropping_a_copy_drops_its_collections_only(tmp_path):
    status, _, _, state = run_script(tmp_path, DROP_JS, SEED, **copy_env("layra", "shadow"))
    assert status == 0 and state == {"layra": {"users": 2, "old": 1, "__pre_restore__junk": 9}, "other": {"users": 5}}


def test_the_live_collections_are_never_dropped(tmp_path):
    status, _, stderr, state = run_script(tmp_path, DROP_JS, SEED, LAYRA_DB="layra")
    assert status != 0 and "never dropped" in stderr and state == SEED


def test_the_swap_refuses_views_before_changing_anything(tmp_path):
    seed = {**SEED, "layra": {"users": 2, "v_active": 0, "__restore__users": 3}}
    status, _, stderr, state = run_swap(tmp_path, seed)
    assert status != 0 and "nothing was changed" in stderr
    assert state == seed


# --- the stand-in tools ------------------------------------------------------------------

def standin_run(tool, *args):
    return subprocess.run([sys.executable, str(STANDINS / tool), *args], capture_output=True, text=True,
                          env={"PATH": os.environ.get("PATH", "")})


@pytest.mark.parametrize("tool, args", [
    ("mongodump", ["--password=secret"]),
    ("mongodump", ["--uri", "mongodb://root:secret@localhost"]),
    ("mongodump", ["--archive=/tmp/out.archive"]),
    ("mongodump", ["mongodb://localhost:27017"]),
    ("mongorestore", ["--gzip=true"]),
    ("mongorestore", ["--nsInclude"]),
    ("mongorestore", ["--dir", "dump/"]),
    ("mongosh", ["--host", "localhost"]),
    ("mongosh", ["--file", "x.js"]),
])
def test_the_stand_ins_refuse_flags_we_do_not_use(tool, args):
    run = standin_run(tool, *args)
    assert run.returncode == 2 and "(stand-in" in run.stderr


def test_the_stand_in_takes_both_flag_syntaxes():
    assert standin.parse("mongorestore", ["--nsFrom", "a.*", "--nsFrom=b.*", "--drop"]) == {
        "--nsFrom": ["a.*", "b.*"], "--drop": [True]}


def test_the_stand_in_mongosh_refuses_a_script_it_does_not_know():
    run = standin_run("mongosh", "--quiet", "--norc", "--eval", "db.dropDatabase()")
    assert run.returncode == 1 and "cannot run JavaScript" in run.stderr


def test_the_stand_in_checks_the_login_against_the_servers_root_user(monkeypatch):
    monkeypatch.setenv("MONGO_INITDB_ROOT_USERNAME", "root")
    monkeypatch.setenv("MONGO_INITDB_ROOT_PASSWORD", PASSWORD)
    standin.check_login("root", PASSWORD, "admin")
    for login in [("root", "wrong", "admin"), ("other", PASSWORD, "admin"), ("root", PASSWORD, "layra")]:
        with pytest.raises(standin.Failure, match="Authentication failed"):
            standin.check_login(*login)
    with pytest.raises(standin.Failure, match="requires authentication"):
        standin.check_login(None, None, None)


def test_the_stand_in_reads_yaml_passwords_in_every_quoting():
    assert standin.yaml_password("password: 'it''s'\n") == "it's"
    assert standin.yaml_password('password: "a\\"b"\n') == 'a"b'
    assert standin.yaml_password("password: plain # comment\n") == "plain"
    with pytest.raises(standin.Failure, match="unknown line"):
        standin.yaml_password("username: root\n")


def test_the_stand_in_renames_namespaces_like_ns_from_and_ns_to():
    rename = standin.renamer({"--nsInclude": ["layra.*"], "--nsFrom": ["layra.*"], "--nsTo": ["layra.__restore__*"]})
    assert rename("layra.users") == "layra.__restore__users"
    assert rename("layra.fs.files") == "layra.__restore__fs.files"
    assert rename("other.users") is None


def test_the_stand_in_refuses_a_corrupt_or_truncated_archive():
    good = standin.ARCHIVE_HEADER + b'C {"ns": "layra.users", "indexes": [], "count": 1}\nD {"_id": 1}\nE {}\n'
    records = standin.archive_records(gzip.GzipFile(fileobj=io.BytesIO(gzip.compress(good))))
    assert [kind for kind, _ in records] == ["C", "D", "E"]
    for broken in (good[:-5], good.replace(b'D {"_id"', b"D {_id"), b"not an archive\n"):
        with pytest.raises(standin.Failure):
            list(standin.archive_records(iter(broken.splitlines(keepends=True))))
