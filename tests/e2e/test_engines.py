"""
The MongoDB, Qdrant and volume-set engines round-trip through backup.py and rollback.py
over real SSH on the sandbox: back up, change the data, see the diff, roll back, prove it
with fingerprints, run again for a noop; a failure mid-archive leaves the set running and
no snapshot that looks whole.

Real: the Milvus 2.3.5 standalone server (its own binary, from the Milvus project's
embedded distribution) and etcd, one volume set stopped and archived together; only its
MinIO is not there (local storage instead). STAND-INS (no server can be had here, see the README): MongoDB is nx-27017 with
stand-in mongodump/mongorestore/mongosh; Qdrant is a stdlib HTTP server with Qdrant's
snapshot endpoints. sandbox-1 backs Qdrant up through its API, sandbox-2 by volume.
"""

from __future__ import annotations

import json
import re
import shlex

import pytest

from .conftest import Sandbox, SandboxHost

ROOT = "/var/backups/layra"
MILVUS_SET = ("milvus-standalone", "milvus-etcd")


def in_backend(host: SandboxHost, script: str) -> str:
    """Python in the backend container (pymongo, pymilvus, urllib), the stack's secrets in its env."""
    return host.stack("set -a && . ./.env && set +a && docker compose exec -T -e QDRANT_API_KEY backend "
                      f"python3 -c {shlex.quote(script)} </dev/null")


MILVUS = "from pymilvus import MilvusClient; c = MilvusClient(uri='http://milvus-standalone:19530'); "


# A direction no seeded vector has: its nearest neighbour is one answer of the index.
PROBE = [1.0] + [0.0] * 7


def milvus_rows(host: SandboxHost) -> int:
    """kb_chunks' rows as a query sees them (deletes applied, unflushed rows included)."""
    return int(in_backend(host, MILVUS + "print(c.query('kb_chunks', filter='', output_fields=['count(*)'], "
                                         "consistency_level='Strong')[0]['count(*)'])"))


def milvus_nearest(host: SandboxHost) -> int:
    """The id of kb_chunks' nearest row to PROBE, as Milvus's search answers."""
    return int(in_backend(host, MILVUS + f"print(c.search('kb_chunks', data=[{PROBE}], limit=1, "
                                         "consistency_level='Strong')[0][0]['id'])"))


def etcd(host: SandboxHost, *args: str) -> str:
    return host.stack("docker compose exec -T milvus-etcd etcdctl " + " ".join(args) + " </dev/null")


def set_states(host: SandboxHost, services=MILVUS_SET) -> dict[str, str]:
    """service -> "running healthy" (or what it is), for each service of a set. A container
    Docker still calls ``starting`` (its first check comes one interval after the start,
    30 s for Milvus here) counts as healthy when its own healthcheck, run now through
    ``docker exec`` (the set's checks are CMD ones: their arguments verbatim), passes:
    the readiness a rollback waits for."""
    out = host.stack(
        "for id in $(docker compose ps -a -q " + " ".join(services) + "); do "
        "set -- $(docker inspect -f '{{index .Config.Labels \"com.docker.compose.service\"}} {{.State.Status}} "
        "{{if .State.Health}}{{.State.Health.Status}}{{end}}' \"$id\"); "
        "if [ \"$2 $3\" = 'running starting' ] && docker inspect -f "
        "'{{range slice .Config.Healthcheck.Test 1}}{{printf \"%s\\x00\" .}}{{end}}' \"$id\" | head -c -1 | "
        "xargs -0 docker exec \"$id\" >/dev/null 2>&1; then set -- \"$1\" running healthy; fi; echo \"$@\"; done")
    return {line.split()[0]: " ".join(line.split()[1:]) for line in out.splitlines() if line.strip()}


MONGO = "import pymongo; db = pymongo.MongoClient('mongodb', 27017)['layra']; "
QDRANT = """
import json, os, urllib.request
def q(method, path, body=None):
    r = urllib.request.Request('http://qdrant:6333' + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={'Content-Type': 'application/json', 'api-key': os.environ['QDRANT_API_KEY']})
    return json.loads(urllib.request.urlopen(r, timeout=10).read())['result']
"""


def mongo_counts(host: SandboxHost) -> dict:
    return json.loads(in_backend(host, MONGO + "import json; print(json.dumps("
                                 "{c: db[c].count_documents({}) for c in sorted(db.list_collection_names())}))"))


def qdrant_points(host: SandboxHost) -> int:
    return int(in_backend(host, QDRANT + "print(q('GET', '/collections/kb_vectors')['points_count'])"))


def damage(host: SandboxHost):
    in_backend(host, MILVUS + "c.delete('kb_chunks', ids=[1, 2, 3]); "
                              f"c.insert('kb_chunks', [{{'id': 9001, 'vector': {PROBE}, 'text': 'e2e'}}]); "
                              "c.flush('kb_chunks')")
    etcd(host, "put", "layra/e2e/damage", "yes")
    in_backend(host, MONGO + "db.conversations.delete_many({'user': 'user1'}); "
                             "db.files.update_one({'_id': 'file-01'}, {'$set': {'pages': 99}}); db.e2e_extra.insert_one({'x': 1})")
    in_backend(host, QDRANT + "q('PUT', '/collections/kb_vectors/points?wait=true', "
                              "{'points': [{'id': 9001, 'vector': [0.5] * 8, 'payload': {'kb': 9}}]})")


def backup(sandbox: Sandbox, label: str, *args: str) -> str:
    run = sandbox.pyinfra("backup.py", "--data", f"label={label}", *args)
    assert run.ok, run.output
    ids = set(re.findall(rf"snapshot (\d{{8}}T\d{{6}}Z-{label})", run.output))
    assert len(ids) == 1, run.output
    return ids.pop()


@pytest.fixture(scope="module", autouse=True)
def clean_slate(sandbox: Sandbox):
    sandbox.at_good_release()
    for host in sandbox.hosts:
        host.ssh(f"rm -rf {ROOT}")
        etcd(host, "del", "--prefix", "layra/e2e/")
    yield


def test_every_stateful_component_round_trips_through_backup_and_rollback(sandbox: Sandbox):
    before = {host.name: (mongo_counts(host), qdrant_points(host), milvus_nearest(host)) for host in sandbox.hosts}
    snapshot_id = backup(sandbox, "engines")
    for host in sandbox.hosts:
        assert set(set_states(host).values()) == {"running healthy"}, "the set runs again after the backup"
        part = json.loads(host.ssh(f"cat {ROOT}/{snapshot_id}/manifest.json"))["parts"]["milvus"]
        assert part["services"] == list(MILVUS_SET)
        assert set(part["volumes"]) == {"layra_milvus_data", "layra_etcd_data"}
        assert part["milvus_collections"] == {"kb_chunks": milvus_rows(host)}
        parts = json.loads(host.ssh(f"cat {ROOT}/{snapshot_id}/manifest.json"))["parts"]
        assert parts["mongodb.layra"]["engine"] == "mongo"
        qdrant_part = "qdrant.kb_vectors" if host is sandbox.hosts[0] else "qdrant"
        assert parts[qdrant_part]["engine"] == ("qdrant" if host is sandbox.hosts[0] else "volumes")
        damage(host)
        assert milvus_nearest(host) == 9001, "the damage is what Milvus serves"

    dry = sandbox.pyinfra("rollback.py", "--data", f"snapshot={snapshot_id}", "--dry")
    assert dry.ok, dry.output
    for host in sandbox.hosts:
        assert f"[{host.name}] plan: milvus (milvus-standalone, milvus-etcd): stop together, restore, start" in dry.output
        assert re.search(rf"\[{host.name}\] plan:   milvus kb_chunks: {part['milvus_collections']['kb_chunks'] - 2}"
                         rf" -> {part['milvus_collections']['kb_chunks']} rows", dry.output), dry.output
        assert etcd(host, "get", "layra/e2e/damage", "--print-value-only") == "yes", "the dry run changed nothing"
        assert f"[{host.name}] plan:   collection e2e_extra dropped" in dry.output
    assert "[sandbox-1] plan: qdrant/kb_vectors: recover from the snapshot, 301 -> 300 points" in dry.output
    assert "[sandbox-2] plan: qdrant (qdrant): stop together, restore, start" in dry.output

    run = sandbox.pyinfra("rollback.py", "--data", f"snapshot={snapshot_id}")
    assert run.ok, run.output
    assert "FAIL" not in run.output
    for check in ("milvus fingerprint", "mongodb/layra fingerprint", "qdrant/kb_vectors fingerprint",
                  "qdrant fingerprint"):
        assert f"ok   phase 4 {check}" in run.output, run.output
    for host in sandbox.hosts:
        assert re.search(rf"{re.escape(host.name)}\S* ok   phase 4 milvus fingerprint: .*; milvus kb_chunks "
                         rf"{part['milvus_collections']['kb_chunks']} rows \(want", run.output), run.output
        assert milvus_rows(host) == part["milvus_collections"]["kb_chunks"]
        assert etcd(host, "get", "layra/e2e/damage", "--print-value-only") == ""
        assert etcd(host, "get", "layra/sandbox/seeded", "--print-value-only") == "1.0.0"
        assert (mongo_counts(host), qdrant_points(host), milvus_nearest(host)) == before[host.name]
        assert set(set_states(host).values()) == {"running healthy"}, "the set runs again after the restore"
        # what the swap displaced is in the safety snapshot, then no longer beside the volume
        safety = run.record()["hosts"][host.name]["safety_snapshot"]
        kept = json.loads(host.ssh(f"cat {ROOT}/{safety}/manifest.json"))["parts"]["milvus"]
        assert kept["displaced"] is True and set(kept["volumes"]) == {"layra_milvus_data", "layra_etcd_data"}
        assert host.ssh("ls -d /var/lib/docker/volumes/layra_milvus_data/_data.pre-restore 2>/dev/null || true") == ""

    again = sandbox.pyinfra("rollback.py", "--data", f"snapshot={snapshot_id}")
    assert again.ok, again.output
    assert again.totals()["changed"] == 0, again.output


def test_a_failure_archiving_one_volume_restarts_the_set_and_keeps_no_snapshot(sandbox: Sandbox):
    host = sandbox.hosts[0]
    # the host's zstd fails on its second call: the first volume is archived, the second is not
    host.ssh("mv /usr/bin/zstd /usr/bin/zstd.real && printf '%s\\n' '#!/bin/sh' "
             "'n=$(cat /tmp/zstd-calls 2>/dev/null || echo 0); echo $((n + 1)) >/tmp/zstd-calls' "
             "'[ \"$n\" -lt 1 ] || { echo \"zstd: injected failure\" >&2; exit 1; }' "
             "'exec /usr/bin/zstd.real \"$@\"' >/usr/bin/zstd && chmod 0755 /usr/bin/zstd && rm -f /tmp/zstd-calls")
    try:
        run = sandbox.pyinfra("backup.py", "--data", "label=broken", "--limit", host.name)
    finally:
        host.ssh("mv -f /usr/bin/zstd.real /usr/bin/zstd && rm -f /tmp/zstd-calls")

    assert not run.ok
    assert re.search(r"archiving volume layra_\w+ failed", run.output), run.output
    assert "backup" in run.output and "failed: no snapshot was kept" in run.output
    assert host.ssh(f"ls {ROOT} | grep broken || true") == "", "neither a snapshot nor a partial one is left"
    assert set(set_states(host).values()) == {"running healthy"}
