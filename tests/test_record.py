"""The run record: each operation lands in the phase it runs in, on every host, however
pyinfra interleaves the hosts while it prepares them (it prepares them all at once)."""

from __future__ import annotations

import gevent
from pyinfra.context import ctx_host

from pyinfra_deploys.record import Run


class PreparedHost:
    """What Run.phase reads of a host: the operations it registered, in order."""

    def __init__(self, name: str):
        self.name, self.op_hash_order = name, []


def test_an_operation_another_host_registers_meanwhile_stays_out_of_this_hosts_phase():
    run = Run()
    taking, releasing = PreparedHost("sandbox-1"), PreparedHost("sandbox-2")

    def safety_snapshot():
        with ctx_host.use(taking), run.phase("safety_snapshot"):
            taking.op_hash_order.append("dump")
            gevent.sleep(0.02)   # a fact read: the other host's preparation runs meanwhile
            taking.op_hash_order.append("complete")

    def already_at_the_end():
        with ctx_host.use(releasing):
            gevent.sleep(0.01)
            releasing.op_hash_order.append("release-lock")

    gevent.joinall([gevent.spawn(safety_snapshot), gevent.spawn(already_at_the_end)], raise_error=True)
    assert run.phase_of == {"dump": "safety_snapshot", "complete": "safety_snapshot"}


class Ops:
    def __init__(self, ops):
        self.ops = ops


def test_an_operation_a_host_never_registered_is_not_in_its_table():
    run = Run()
    run.record = {"hosts": {}, "started_at": None}
    run.save = lambda: None
    host = PreparedHost("sandbox-1")
    run.operation_host_start(Ops({host: {}}), host, "dump-redis-rdb")
    assert run.record["hosts"] == {}
