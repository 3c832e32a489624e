"""The dry run's words: counts in the singular where there is one, thousands separated,
and caches named as flushed only by a run that changes something."""

from pyinfra_deploys.engines.mysql import database_plan as mysql_plan
from pyinfra_deploys.plan import describe


def redis_plan(name: str, counts: dict) -> dict:
    """A cache plan as the Redis engine makes it."""
    return {"part": None, "component": name, "engine": "redis", "flush": counts, "changes": any(counts.values())}


def fingerprint(rows: int, checksum: int = 1) -> dict:
    return {"exists": True, "schema_sha256": "s", "tables": {"users": {"rows": rows, "checksum": checksum}},
            "views": [], "routines": [], "triggers": [], "schema_objects": {}}


def test_one_key_matches_and_thousands_are_separated():
    assert describe(redis_plan("redis", {"user:session:*": 1, "kb:cache:*": 200005, "embedding:*": 0})) == [
        "redis: 1 key matches user:session:* (flush)",
        "redis: 200,005 keys match kb:cache:* (flush)",
        "redis: 0 keys match embedding:*",
    ]


def test_row_counts_are_written_with_thousands_separators():
    lines = describe(mysql_plan("mysql", "layra", fingerprint(1363637), fingerprint(1500000)))
    assert "  users: 1,363,637 -> 1,500,000 rows" in lines


def test_a_run_that_changes_nothing_does_not_call_its_cache_keys_flushed():
    plan = {**redis_plan("redis", {"user:session:*": 12}), "flushes": False}
    assert describe(plan) == ["redis: 12 keys match user:session:* (left alone: the run changes nothing here)"]
