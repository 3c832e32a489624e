"""
Reading independent facts of one host side by side.

pyinfra reads the facts of one host's deploy code, or of one operation, one after
another: a round trip each. The fingerprints a plan or a check reads are independent,
and each spends most of its time on the host (a ``docker compose exec``, a full-table
checksum), so a plan that reads five of them waits for the slowest, not for their sum.
Each runs over its own channel of the host's one SSH connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import gevent
from gevent.pool import Pool
from pyinfra.context import ctx_config, ctx_host

T = TypeVar("T")

# sshd's MaxSessions is 10 by default; the calls of one host stay well under it
AT_ONCE = 6


def side_by_side(calls: list[Callable[[], T]]) -> list[T]:
    """Each call's result, in order, the calls run at the same time on the current host.

    pyinfra's ``host`` and ``config`` are greenlet-local: each call sees the caller's.
    Every call finishes before the first error, if any, is raised: nothing is left
    running on the host behind the caller's back.
    """
    if len(calls) < 2:
        return [call() for call in calls]
    host, config = ctx_host.get(), ctx_config.get()

    def run(call):
        # an error comes back as a value: raised in the greenlet, gevent would also print
        # its traceback on the operator's terminal
        with ctx_config.use(config), ctx_host.use(host):
            try:
                return call(), None
            except Exception as error:  # noqa: BLE001 - raised below, in the caller
                return None, error

    pool = Pool(AT_ONCE)
    greenlets = [pool.spawn(run, call) for call in calls]
    gevent.joinall(greenlets, raise_error=True)
    results = [greenlet.value for greenlet in greenlets]
    for _, error in results:
        if error is not None:
            raise error
    return [value for value, _ in results]
