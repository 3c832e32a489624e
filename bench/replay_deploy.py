"""
bench/replay.py's side of the replay: the MySQL engine's ``shadow_replayed`` (what a
point-in-time rollback runs onto its staged copy) for one database and binlog range:

    pyinfra inventories/sandbox.py bench/replay_deploy.py --limit sandbox-1 -y \\
        --data bench_database=replaybench --data bench_file=binlog.000001 \\
        --data bench_start=4 --data bench_stop=1234

Prints ``bench: replay took <seconds> s``: the wall time of the operation in pyinfra's
execution stage, between two local marks.
"""

import time

from pyinfra import host, logger
from pyinfra.operations import python

from operations import mysql
from pyinfra_deploys.config import stack_from

MARKS: dict[str, float] = {}


def mark(state, host, what: str) -> None:
    MARKS[what] = time.monotonic()
    if what == "end":
        logger.info(f"{host.print_prefix}bench: replay took {MARKS['end'] - MARKS['start']:.3f} s")


python.call(name="bench: replay starts", function=mark, what="start")
mysql.shadow_replayed(name="bench: replay", stack=stack_from(host.data), database=host.data.get("bench_database"),
                      replay={"files": [host.data.get("bench_file")], "start": int(host.data.get("bench_start")),
                              "stop": int(host.data.get("bench_stop"))})
python.call(name="bench: replay ends", function=mark, what="end")
