"""facts.gather.side_by_side: independent reads of one host, at the same time."""

import time

import gevent
import pytest
from pyinfra import host
from pyinfra.context import ctx_host

from facts.gather import side_by_side


class Named:
    def __init__(self, name):
        self.name = name


def test_results_come_back_in_the_order_of_the_calls():
    def after(seconds, value):
        return lambda: (gevent.sleep(seconds), value)[1]

    assert side_by_side([after(0.03, "slow"), after(0.0, "fast"), after(0.01, "middle")]) == ["slow", "fast", "middle"]


def test_calls_that_wait_overlap_instead_of_adding_up():
    started, ended = [], []

    def waits():
        started.append(time.monotonic())
        gevent.sleep(0.05)
        ended.append(time.monotonic())

    side_by_side([waits for _ in range(5)])
    # every call started before the first one ended: they overlap, whatever the machine's load
    assert len(started) == 5 and max(started) < min(ended)


def test_each_call_sees_the_callers_host():
    with ctx_host.use(Named("sandbox-7")):
        assert side_by_side([lambda: host.name, lambda: host.name]) == ["sandbox-7", "sandbox-7"]


def test_an_error_is_raised_in_the_caller_once_every_call_has_finished(capfd):
    finished = []

    def fails():
        raise ValueError("no answer from mysqld")

    def slow():
        gevent.sleep(0.05)
        finished.append("slow")

    with pytest.raises(ValueError, match="no answer from mysqld"):
        side_by_side([fails, slow])
    assert finished == ["slow"]
    assert "Traceback" not in capfd.readouterr().err  # not printed by gevent as well


def test_a_single_call_runs_in_the_caller():
    assert side_by_side([lambda: gevent.getcurrent()]) == [gevent.getcurrent()]
    assert side_by_side([]) == []
