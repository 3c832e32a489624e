"""The sandbox's Qdrant STAND-IN (sandbox/stack/release-1.0.0/standins/qdrant_standin.py)
answers what layra-rollback asks of Qdrant as Qdrant does: status codes, bodies, the API
key, wait=false, checksums and recovery. It is not Qdrant: these tests keep the stand-in
honest, so that what passes against it would pass against the real server. At the end,
the qdrant engine's own fact commands, and the dump (operations/scripts/qdrant_dump.sh),
run against it under bash.

The stand-in runs as a subprocess on 127.0.0.1, on a free port, with its storage in a
temporary directory."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from facts.compose import Stack
from facts.qdrant import QdrantFingerprint, QdrantSnapshots, same_data
from operations.qdrant import dump_command

STANDIN = Path(__file__).resolve().parents[1] / "sandbox/stack/release-1.0.0/standins/qdrant_standin.py"
KEY = "test-key-with-\"quote\\"
VECTORS = {"size": 4, "distance": "Cosine"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("qdrant")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "QDRANT__SERVICE__API_KEY": KEY}
    process = subprocess.Popen(
        [sys.executable, str(STANDIN), "--port", str(port), "--storage", str(root / "storage"),
         "--snapshots", str(root / "snapshots"), "--snapshot-delay", "0.4"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    (root / ".env").write_text(f"QDRANT_API_KEY={KEY}\nWRONG_KEY=nope\n")
    yield {"url": url, "root": root}
    process.terminate()
    process.wait(timeout=10)


def call(server, method, path, body=None, key=KEY, raw=None, headers=None):
    """(status, parsed JSON or text) of one request."""
    headers = dict(headers or {})
    if key is not None:
        headers["api-key"] = key
    data = raw
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(server["url"] + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, payload = error.code, error.read()
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, payload


def collection(server, name, points):
    call(server, "DELETE", f"/collections/{name}")
    assert call(server, "PUT", f"/collections/{name}", {"vectors": VECTORS})[0] == 200
    upsert(server, name, points)


def upsert(server, name, points):
    body = {"points": [{"id": i, "vector": [i / 10, 0.2, 0.3, 0.4], "payload": {"n": i}} for i in points]}
    assert call(server, "PUT", f"/collections/{name}/points?wait=true", body)[0] == 200


def points_count(server, name):
    return call(server, "GET", f"/collections/{name}")[1]["result"]["points_count"]


def snapshot(server, name):
    status, answer = call(server, "POST", f"/collections/{name}/snapshots")
    assert status == 200
    return answer["result"]


def snapshot_file(server, name, points):
    """A fresh collection's snapshot: its description and its bytes, downloaded."""
    collection(server, name, points)
    made = snapshot(server, name)
    return made, call(server, "GET", f"/collections/{name}/snapshots/{made['name']}")[1]


def upload(server, name, data, query="priority=snapshot", filename="up.snapshot"):
    """POST .../snapshots/upload with the file as multipart field ``snapshot``, as curl -F sends it."""
    boundary = "layra-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"snapshot\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return call(server, "POST", f"/collections/{name}/snapshots/upload?{query}", raw=body,
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})


def test_a_request_without_the_api_key_is_refused_with_401_and_qdrants_words(server):
    status, body = call(server, "GET", "/collections", key=None)
    assert (status, body) == (401, b"Must provide an API key or an Authorization bearer token")


def test_a_wrong_api_key_is_refused_with_401(server):
    assert call(server, "GET", "/collections", key="nope") == (401, b"Invalid API key or JWT")


def test_the_key_also_works_as_a_bearer_token(server):
    status, _ = call(server, "GET", "/collections", key=None, headers={"Authorization": f"Bearer {KEY}"})
    assert status == 200


def test_health_and_version_answer_without_a_key_as_qdrants_whitelist_says(server):
    assert call(server, "GET", "/healthz", key=None)[0] == 200
    status, info = call(server, "GET", "/", key=None)
    assert status == 200 and info["version"].startswith("1.12.0") and "STAND-IN" in info["title"]


def test_an_unknown_collection_is_404_with_qdrants_error_shape(server):
    status, body = call(server, "GET", "/collections/nowhere/snapshots")
    assert status == 404
    assert body["status"] == {"error": "Not found: Collection `nowhere` doesn't exist!"}
    assert "result" not in body


def test_collection_info_has_points_count_and_config(server):
    collection(server, "info_shape", range(1, 6))
    status, body = call(server, "GET", "/collections/info_shape")
    info = body["result"]
    assert status == 200 and body["status"] == "ok"
    assert info["points_count"] == 5
    assert info["config"]["params"]["vectors"] == VECTORS
    assert {"hnsw_config", "optimizer_config", "wal_config"} <= set(info["config"])


def test_wait_false_is_accepted_at_once_and_the_snapshot_is_listed_once_written(server):
    collection(server, "background", range(1, 4))
    started = time.monotonic()
    status, body = call(server, "POST", "/collections/background/snapshots?wait=false")
    assert (status, body["status"]) == (202, "accepted") and "result" not in body
    assert time.monotonic() - started < 0.3
    assert call(server, "GET", "/collections/background/snapshots")[1]["result"] == []
    for _ in range(50):
        listed = call(server, "GET", "/collections/background/snapshots")[1]["result"]
        if listed:
            break
        time.sleep(0.1)
    assert len(listed) == 1 and listed[0]["name"].startswith("background-")
    assert len(listed[0]["checksum"]) == 64


def test_a_download_matches_the_checksum_the_list_reports(server):
    made, data = snapshot_file(server, "download", range(1, 4))
    assert hashlib.sha256(data).hexdigest() == made["checksum"] and len(data) == made["size"]


def test_a_deleted_snapshot_is_gone_and_a_second_delete_is_404(server):
    collection(server, "deleting", [1])
    made = snapshot(server, "deleting")
    path = f"/collections/deleting/snapshots/{made['name']}"
    assert call(server, "DELETE", path)[0] == 200
    status, body = call(server, "DELETE", path)
    assert status == 404 and body["status"]["error"] == f"Not found: Snapshot {made['name']} not found"


def test_an_upload_with_another_checksum_is_refused_with_400_and_nothing_changes(server):
    made, data = snapshot_file(server, "refused", range(1, 4))
    upsert(server, "refused", [10])
    status, answer = upload(server, "refused", data, f"priority=snapshot&checksum={'0' * 64}")
    assert status == 400
    assert answer["status"]["error"] == f"Checksum mismatch: expected {made['checksum']}, actual {'0' * 64}"
    assert points_count(server, "refused") == 4


def test_an_upload_with_priority_snapshot_replaces_the_collection_and_is_kept_without_checksum(server):
    made, data = snapshot_file(server, "uploaded", range(1, 4))
    upsert(server, "uploaded", [10, 11])
    status, answer = upload(server, "uploaded", data, f"priority=snapshot&checksum={made['checksum']}", "mine.snapshot")
    assert (status, answer["result"]) == (200, True)
    assert points_count(server, "uploaded") == 3
    kept = {s["name"]: s["checksum"] for s in call(server, "GET", "/collections/uploaded/snapshots")[1]["result"]}
    assert kept["mine.snapshot"] is None


def test_an_upload_creates_a_missing_collection(server):
    _, data = snapshot_file(server, "recreated", range(1, 8))
    call(server, "DELETE", "/collections/recreated")
    assert upload(server, "recreated", data)[0] == 200
    assert points_count(server, "recreated") == 7


def recover(server, name, made, checksum):
    location = f"file://{server['root']}/snapshots/{name}/{made['name']}"
    return call(server, "PUT", f"/collections/{name}/snapshots/recover",
                {"location": location, "priority": "snapshot", "checksum": checksum})


def test_recover_by_location_with_priority_snapshot_replaces_the_collection(server):
    collection(server, "located", range(1, 4))
    made = snapshot(server, "located")
    upsert(server, "located", [10, 11, 12])
    status, answer = recover(server, "located", made, made["checksum"])
    assert (status, answer["result"]) == (200, True)
    assert points_count(server, "located") == 3


def test_recover_by_location_with_another_checksum_is_refused_with_400(server):
    collection(server, "located_bad", [1])
    made = snapshot(server, "located_bad")
    status, answer = recover(server, "located_bad", made, "f" * 64)
    assert status == 400
    assert answer["status"]["error"] == (f"Wrong input: Snapshot checksum mismatch: expected {'f' * 64}, "
                                         f"got {made['checksum']}")


def test_recover_from_a_file_outside_the_snapshots_directory_is_forbidden(server):
    collection(server, "jailed", [1])
    status, answer = call(server, "PUT", "/collections/jailed/snapshots/recover", {"location": "file:///etc/passwd"})
    assert status == 403
    assert answer["status"]["error"] == 'Forbidden: Snapshot file "/etc/passwd" must be inside snapshots directory'


def test_a_snapshot_whose_vectors_differ_from_the_collections_is_refused(server):
    _, data = snapshot_file(server, "resized", [1])
    call(server, "DELETE", "/collections/resized")
    call(server, "PUT", "/collections/resized", {"vectors": {"size": 8, "distance": "Cosine"}})
    status, answer = upload(server, "resized", data)
    assert status == 400 and "Snapshot is not compatible with existing collection" in answer["status"]["error"]


def run_fact(fact, server, **kwargs):
    """A fact's command run under bash against the stand-in, and its result."""
    stack = {"dir": str(server["root"]), "project": "standin"}
    command = fact.command(stack, url=kwargs.pop("url", server["url"]), **kwargs).get_raw_value()
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return fact.process(result.stdout.splitlines())


def test_the_fingerprint_fact_reads_the_standin_with_the_key_from_the_env_file(server):
    collection(server, "fingerprinted", range(1, 4))
    first = run_fact(QdrantFingerprint(), server)
    assert first["reachable"] and first["collections"]["fingerprinted"]["points"] == 3
    upsert(server, "fingerprinted", [2])  # same ids, same data: same fingerprint
    again = run_fact(QdrantFingerprint(), server)["collections"]["fingerprinted"]
    assert again == first["collections"]["fingerprinted"]
    call(server, "PUT", "/collections/fingerprinted/points?wait=true",
         {"points": [{"id": 2, "vector": [0.2, 0.2, 0.3, 0.4], "payload": {"n": "changed"}}]})
    changed = run_fact(QdrantFingerprint(), server)["collections"]["fingerprinted"]
    assert changed["points"] == 3 and changed["sample_sha256"] != first["collections"]["fingerprinted"]["sample_sha256"]


def test_a_change_to_one_point_far_past_the_sample_at_the_same_count_changes_the_fingerprint(server):
    collection(server, "paged", range(1, 601))  # three pages of 256
    before = run_fact(QdrantFingerprint(), server)["collections"]["paged"]
    call(server, "PUT", "/collections/paged/points?wait=true",
         {"points": [{"id": 550, "vector": [55.0, 0.2, 0.3, 0.4], "payload": {"n": "changed"}}]})
    after = run_fact(QdrantFingerprint(), server)["collections"]["paged"]
    assert (after["points"], after["sample_sha256"]) == (before["points"], before["sample_sha256"]) == (
        600, before["sample_sha256"])
    assert after["points_sha256"] != before["points_sha256"]
    assert not same_data(after, before)
    # a snapshot taken before every point was hashed is compared by its sample
    assert same_data(after, {key: value for key, value in before.items() if key != "points_sha256"})


def test_the_fingerprint_fact_fails_with_qdrants_message_on_a_wrong_key(server):
    with pytest.raises(ValueError, match="HTTP 401: Invalid API key or JWT"):
        run_fact(QdrantFingerprint(), server, password_key="WRONG_KEY")


def test_the_fingerprint_fact_reports_an_unreachable_server(server):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert run_fact(QdrantFingerprint(), server, url=f"http://127.0.0.1:{port}")["reachable"] is False


def test_the_snapshots_fact_lists_what_the_standin_keeps(server):
    collection(server, "kb_vectors", [1])
    made = snapshot(server, "kb_vectors")
    listed = run_fact(QdrantSnapshots(), server, collection="kb_vectors")
    assert [(s["name"], s["checksum"]) for s in listed] == [(made["name"], made["checksum"])]


def dump(server, collection, timeout=30, password_key="QDRANT_API_KEY"):
    """The dump operation's command run under bash against the stand-in; its run and file."""
    directory = server["root"] / "dumps"
    directory.mkdir(mode=0o700, exist_ok=True)
    command = dump_command(Stack(str(server["root"]), project="standin"), collection, str(directory),
                           f"qdrant.{collection}", url=server["url"], password_key=password_key, timeout=timeout)
    run = subprocess.run(["bash", "-c", command.get_raw_value()], capture_output=True, text=True, timeout=60)
    return run, directory / f"qdrant.{collection}.snapshot"


def test_the_dump_downloads_a_checked_snapshot_and_deletes_the_servers_copy(server):
    collection(server, "kb_dump", range(1, 6))
    run, file = dump(server, "kb_dump")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("qdrant kb_dump: kb_dump-") and run.stdout.endswith(
        f".snapshot -> {file} ({file.stat().st_size} bytes)\n")
    assert file.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in file.parent.iterdir()) == [file.name]  # no temporary file left
    assert call(server, "GET", "/collections/kb_dump/snapshots")[1]["result"] == []
    # what was downloaded restores the collection
    call(server, "DELETE", "/collections/kb_dump")
    assert upload(server, "kb_dump", file.read_bytes())[0] == 200
    assert points_count(server, "kb_dump") == 5


def test_the_dump_of_a_collection_that_does_not_exist_fails_with_qdrants_words_and_writes_nothing(server):
    run, file = dump(server, "nowhere")
    assert run.returncode == 1
    assert "qdrant dump of nowhere: listing snapshots: " in run.stderr
    assert "Not found: Collection `nowhere` doesn't exist!" in run.stderr
    assert not file.exists()


def test_the_dump_with_a_wrong_key_fails_with_qdrants_words(server):
    collection(server, "refused_dump", [1])
    run, file = dump(server, "refused_dump", password_key="WRONG_KEY")
    assert run.returncode == 1 and "Invalid API key or JWT" in run.stderr
    assert not file.exists()


def test_the_dump_fails_when_no_snapshot_is_listed_in_time(server):
    collection(server, "slow", [1])
    run, file = dump(server, "slow", timeout=0)  # the stand-in writes it 0.4 s after it is asked
    assert run.returncode == 1
    assert run.stderr == ("qdrant dump of slow: no new snapshot was listed within 0s (Qdrant may still write it: "
                          "delete it once listed)\n")
    assert not file.exists()
