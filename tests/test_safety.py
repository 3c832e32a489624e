"""The rollback's safety snapshot made of what it displaced (pyinfra_deploys/safety.py):
what the report says the displaced copies hold that the restored data does not."""

from __future__ import annotations

from pyinfra_deploys import report
from pyinfra_deploys.safety import items_differing


def test_the_tables_whose_rows_differ_are_counted_displaced_against_restored():
    displaced = {"tables": {"knowledge_bases": {"rows": 12, "checksum": 1}, "users": {"rows": 4, "checksum": 2},
                            "kb_shares": {"rows": 3, "checksum": 3}}}
    restored = {"tables": {"knowledge_bases": {"rows": 10, "checksum": 4}, "users": {"rows": 4, "checksum": 2}}}
    assert items_differing(displaced, restored) == {"kb_shares": [3, 0], "knowledge_bases": [12, 10]}


def test_collections_are_counted_by_their_documents():
    assert items_differing({"collections": {"conversations": {"count": 130}}},
                           {"collections": {"conversations": {"count": 120}}}) == {"conversations": [130, 120]}


def test_the_report_lists_what_each_host_kept_aside_with_the_difference():
    record = {"run_id": "20261207T101009Z-rollback", "kind": "rollback", "status": "succeeded",
              "hosts": {"sandbox-1": {"status": "succeeded", "safety_snapshot": "20261207T101009Z-safety-before-rollback",
                                      "displaced": {"mysql.layra": {"knowledge_bases": [12, 10]}}}}}
    text = report.render_markdown(record)
    assert "`mysql.layra` `knowledge_bases`: 12 in the displaced copy, 10 restored (+2)" in text
