"""
bench/redis_flush.py's side of the flush: the Redis engine's ``caches_flushed`` (the one
a rollback's caches phase runs) for each Redis component of host data
``layra_components``, as an operator would run it against a host:

    pyinfra inventories/sandbox.py bench/redis_flush_deploy.py --limit sandbox-2 -y \\
        --data layra_components='{"redis": {"engine": "redis", "service": "redis",
               "password_key": "REDIS_PASSWORD", "flush_patterns": [{"db": 5, "pattern": "bench:session:*"}]}}' \\
        [--data bench_batch=500]

``bench_batch``: keys per ``UNLINK`` (the operation's ``batch``; its default when not
given). Prints ``bench: flush operations took <seconds> s`` per host: the wall time of the
flush operations in pyinfra's execution stage, between two local marks. With -y pyinfra
calls an operation only there, so the key count it reads first (a fact) is inside; without
-y it is also read once before, to show what would change.
"""

import time

from pyinfra import host, logger
from pyinfra.operations import python

from pyinfra_deploys.config import components_from, stack_from
from pyinfra_deploys.engines import engine_of

MARKS: dict[str, float] = {}


def mark(state, host, what: str) -> None:
    MARKS[f"{host.name} {what}"] = time.monotonic()
    if what == "end":
        seconds = MARKS[f"{host.name} end"] - MARKS[f"{host.name} start"]
        logger.info(f"{host.print_prefix}bench: flush operations took {seconds:.3f} s")


stack = stack_from(host.data)
options = {} if host.data.get("bench_batch") is None else {"batch": host.data.get("bench_batch")}
python.call(name="bench: flush starts", function=mark, what="start")
for component in components_from(host.data):
    if component.engine == "redis":
        engine_of(component).caches_flushed(stack, component, **options)
python.call(name="bench: flush ends", function=mark, what="end")
