"""
The rollback deploy's plain-Python decisions: which snapshot `latest` is, which incident
times a run accepts, how maintenance settings are read, and what the run record makes of
its operations.
"""

from __future__ import annotations

import pytest
from pyinfra.api import DeployError

from facts.redis import glob_regex, valid_volatile
from pyinfra_deploys.config import maintenance_from
from pyinfra_deploys.record import PHASES, Run
from pyinfra_deploys.rollback import incident_from
from pyinfra_deploys.snapshot import latest_snapshot


def catalog(**snapshots):
    return {"snapshots": {sid: {"created": sid[:16], **entry} for sid, entry in snapshots.items()}}


def test_latest_is_the_newest_verified_snapshot_and_never_a_safety_snapshot():
    found = catalog(**{
        "20261120T100000Z-nightly": {"verified_at": "2026-11-20T10:01:00Z", "label": "nightly"},
        "20261121T100000Z-pre-release": {"verified_at": "2026-11-21T10:01:00Z", "label": "pre-release"},
        "20261121T110000Z-unverified": {"verified_at": None, "label": "unverified"},
        "20261121T120000Z-safety-before-rollback": {"verified_at": "2026-11-21T12:01:00Z",
                                                    "label": "safety-before-rollback"},
    })
    assert latest_snapshot(found) == "20261121T100000Z-pre-release"


def test_latest_is_none_when_no_snapshot_was_verified():
    assert latest_snapshot(catalog(**{"20261121T100000Z-a": {"verified_at": None}})) is None


def test_incident_times_must_be_iso_8601_and_are_kept_as_given():
    assert incident_from({"detected_at": "2026-11-21T12:58:00Z", "trigger": "api errors"}) == {
        "detected_at": "2026-11-21T12:58:00Z", "trigger": "api errors"}
    with pytest.raises(DeployError, match="detected_at='yesterday' must be an ISO 8601 UTC time"):
        incident_from({"detected_at": "yesterday"})


def test_maintenance_settings_default_to_the_backend_and_reject_half_an_nginx():
    assert maintenance_from({}) == {"service": "backend", "nginx_service": None, "dropin": None}
    assert maintenance_from({"layra_maintenance": False}) is None
    with pytest.raises(DeployError, match="nginx_service and dropin go together"):
        maintenance_from({"layra_maintenance": {"service": "backend", "nginx_service": "nginx"}})
    with pytest.raises(DeployError, match="dropin must be a file path on one line without '..'"):
        maintenance_from({"layra_maintenance": {"nginx_service": "nginx", "dropin": "../../etc/passwd.conf"}})
    with pytest.raises(DeployError, match="service must be a compose service name"):
        maintenance_from({"layra_maintenance": {"service": "backend; rm -rf /"}})


def test_volatile_redis_patterns_match_keys_as_redis_cli_quotes_them():
    assert glob_regex("user:session:*") == '^"user:session:.*"$'
    assert glob_regex("kb.cache.?") == '^"kb\\.cache\\.."$'
    assert not valid_volatile('user:[ab]*') and not valid_volatile('a"b') and not valid_volatile("")


def test_the_record_spans_each_phase_from_its_first_start_to_its_last_end_across_hosts():
    run = Run()
    run.record = {"hosts": {
        "a": {"operations": [{"phase": "restore", "started_at": "2026-11-21T10:00:05Z", "ended_at": "2026-11-21T10:00:20Z"},
                             {"phase": "stack", "started_at": "2026-11-21T10:00:01Z", "ended_at": "2026-11-21T10:00:04Z"}]},
        "b": {"operations": [{"phase": "restore", "started_at": "2026-11-21T10:00:04Z", "ended_at": "2026-11-21T10:00:30Z"},
                             {"phase": None, "started_at": "2026-11-21T10:00:00Z", "ended_at": "2026-11-21T10:00:01Z"}]},
    }}
    assert run.phases() == {
        "stack": {"started_at": "2026-11-21T10:00:01Z", "ended_at": "2026-11-21T10:00:04Z"},
        "restore": {"started_at": "2026-11-21T10:00:04Z", "ended_at": "2026-11-21T10:00:30Z"},
    }
    assert list(PHASES).index("verify_integrity") < list(PHASES).index("maintenance_off")
