"""The guarded release's pieces that need no host: what the rollback inherits, what a run
record keeps of the command line, and which release failed."""

import sys

import pytest

from pyinfra_deploys import migrate, record


@pytest.fixture
def argv(monkeypatch):
    def typed(*arguments):
        monkeypatch.setattr(sys, "argv", ["/venv/bin/pyinfra", *arguments])
    return typed


def test_the_rollback_a_release_runs_inherits_connection_options_and_data_overrides_but_not_its_own(argv):
    argv("-y", "--user", "deploy", "--key", "~/.ssh/layra", "--sudo", "--limit", "app", "inventories/prod.py",
         "migrate.py", "--data", "commit=v2.0.0", "--data", "layra_ready_timeout=300",
         "--data", "hook_url=https://hooks.example/T0KEN", "--data", "watch_window=5m")
    assert migrate.parent_options() == ("--user", "deploy", "--key", "~/.ssh/layra", "--sudo",
                                        "--data", "layra_ready_timeout=300")


def test_a_run_record_keeps_the_command_but_never_a_webhook_url(argv):
    argv("inventories/prod.py", "migrate.py", "--data", "commit=v2.0.0", "--data", "hook_url=https://hooks.example/T0KEN")
    assert record.command_line() == ("pyinfra inventories/prod.py migrate.py --data commit=v2.0.0 "
                                     "--data hook_url=[redacted]")


def test_the_inventory_is_found_after_options_that_take_a_value(argv):
    argv("-y", "--limit", "sandbox-1", "--data", "x=1", "inventories/sandbox.py", "rollback.py")
    assert record.inventory_argument() == "inventories/sandbox.py"


class Op:
    def __init__(self, complete, error):
        self.complete, self.error = complete, error

    def is_complete(self):
        return self.complete

    def did_error(self):
        if not self.complete:
            raise RuntimeError("Cannot evaluate operation result before execution")
        return self.error


def test_a_release_operation_that_never_ran_is_not_a_failed_release():
    guard = migrate.Guard()
    guard.deployed = {"app-1": [Op(True, False), Op(True, True)], "app-2": [Op(False, False), Op(False, False)],
                      "app-3": [Op(True, False), Op(True, False)]}
    assert guard.failed_release() == ["app-1"]


def test_the_watch_runs_once_even_when_it_fails_and_the_run_ends_red(monkeypatch, capsys):
    guard = migrate.Guard()
    guard.settings = {"snapshot": "20261121T120000Z-pre-migration"}
    calls = []

    def broken():
        calls.append(1)
        raise OSError("runs dir not writable")

    monkeypatch.setattr(guard, "run_watch", broken)
    monkeypatch.setattr(migrate.RUN, "record", {"incident": {}})
    guard.watch()
    guard.watch()
    assert calls == [1] and guard.result == "watch failed" and guard.red()
    assert "rollback.py --data snapshot=20261121T120000Z-pre-migration" in capsys.readouterr().out
