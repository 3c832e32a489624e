"""facts/scripts/qdrant_points.sh run for real under bash, with `qdrant` (the client
function the fingerprint defines) a stand-in answering canned pages: every page is read,
following next_page_offset to its end, and any failure is the function's; and a collection
listed but not read whole refuses the fingerprint."""

from __future__ import annotations

import json
import subprocess

import pytest

from facts.qdrant import QdrantFingerprint, same_data
from facts.shell import PartialFingerprint, script
from tests.whole_output import read_whole

TIMING = ',"status":"ok","time":0.000123}'


def page(points: list, next_offset) -> str:
    return json.dumps({"result": {"points": points, "next_page_offset": next_offset}}, separators=(",", ":"))[:-1]


def run(answers: dict[str, tuple[str, int]]) -> subprocess.CompletedProcess:
    """``qdrant_points kb 2`` where a request at offset X answers ``answers[X]`` (body, status)."""
    cases = "".join(f"  *'\"offset\": {offset}}}'*) printf '%s\\n%s\\n' {json.dumps(body)} {status} ;;\n"
                    for offset, (body, status) in answers.items())
    fake = f'qdrant() {{\n  echo "$*" >> "$CALLS"\n  case "${{@: -3:1}}" in\n{cases}  esac\n}}\n'
    program = f"{fake}{script('qdrant_points')}\nqdrant_points kb 2"
    return subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30,
                          env={"CALLS": "/dev/null", "PATH": "/usr/bin:/bin"})


def test_every_page_is_read_following_next_page_offset_each_without_its_timing():
    first = page([{"id": 1, "payload": {"t": "a"}, "vector": [0.1]}, {"id": 2, "payload": {}, "vector": [0.2]}],
                 "9f1c2d3e-0000-4000-8000-000000000001")
    last = page([{"id": "9f1c2d3e-0000-4000-8000-000000000001", "payload": {}, "vector": [0.3]}], None)
    done = run({"null": (first + TIMING, 200), '"9f1c2d3e-0000-4000-8000-000000000001"': (last + TIMING, 200)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [first, last]


def test_a_payload_that_spells_next_page_offset_does_not_steer_the_pages():
    tricky = page([{"id": 1, "payload": {"t": '"next_page_offset":7}'}, "vector": [0.1]}], None)
    done = run({"null": (tricky + TIMING, 200)})
    assert (done.returncode, done.stdout) == (0, tricky + "\n")


def test_an_error_answer_midway_returns_1_with_the_answer_and_its_status_on_stderr():
    error = '{"status":{"error":"Service internal error: segment gone"},"time":0.1}'
    done = run({"null": (page([{"id": 1, "payload": {}, "vector": [0.1]}], 5) + TIMING, 200), "5": (error, 500)})
    assert done.returncode == 1
    assert done.stderr.splitlines() == [error, "500"]


def test_a_next_page_offset_that_does_not_move_fails_instead_of_reading_forever():
    stuck = page([{"id": 5, "payload": {}, "vector": [0.1]}], 5) + TIMING
    done = run({"null": (page([], 5) + TIMING, 200), "5": (stuck, 200)})
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["next_page_offset 5 does not move", "000"]


def test_a_listed_collection_whose_points_were_not_read_refuses_the_fingerprint():
    ok = '{"result":{"points_count":2,"config":{}},"status":"ok","time":0.1}'
    output = ["--- layra:version ---", '{"version":"1.12.0"}', "200",
              "--- layra:collections ---", '{"result":{"collections":[{"name":"kb"},{"name":"gone"}]}}', "200",
              "--- layra:info ---", "collection kb", ok, "200", "sample kb", "ab  -", "200", "points kb", "cd  -", "200",
              "collection gone", ok, "200", "sample gone", "ef  -", "200"]
    with pytest.raises(PartialFingerprint, match="gone listed but not read whole"):
        QdrantFingerprint().process(read_whole(output))


def test_a_collection_listed_without_figures_is_never_alike_even_to_itself():
    unread = {"points": None, "config_sha256": None, "sample_sha256": None, "points_sha256": None}
    assert not same_data(unread, dict(unread))
