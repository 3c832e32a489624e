"""operations/scripts/nginx_reload.sh, executed: maintenance on returns only once nginx
serves the drop-in, i.e. once no worker started before the reload still accepts. A
stand-in `nginx` on PATH plays the master: its workers are processes titled as nginx
titles them (`nginx: worker process`), and its reload replaces them a moment later. Each
case runs in a PID namespace of its own (`unshare`, with its own /proc), as the script
runs in the nginx container: it sees only its workers, and none outlives the case."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from facts.shell import script

RELOAD = script("nginx_reload", "operations")
# In the namespace: an old worker, then the script, timed; whether the old worker is gone.
DRIVER = r"""
(exec -a "nginx: worker process" sleep 60) & OLD=$!
export OLD
start=$(date +%s%N)
sh -c "$RELOAD"; rc=$?
echo "rc=$rc ms=$(( ($(date +%s%N) - start) / 1000000 )) old=$OLD"
if kill -0 "$OLD" 2>/dev/null; then echo "old worker accepting"; else echo "old worker gone"; fi
"""


def reloaded(directory: Path, on_reload: str) -> subprocess.CompletedProcess:
    """The script against a stand-in master that does ``on_reload`` (bash) once signalled."""
    (directory / "nginx").write_text(
        f"#!/bin/bash\n[ \"$1 $2\" = '-s reload' ] || exit 2\n( {on_reload} ) >/dev/null 2>&1 &\n")
    (directory / "nginx").chmod(0o755)
    env = {**os.environ, "PATH": f"{directory}:{os.environ['PATH']}", "RELOAD": RELOAD}
    return subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "bash", "-c", DRIVER],
                          env=env, capture_output=True, text=True, timeout=60)


def test_the_reload_returns_once_the_old_workers_stopped_accepting(tmp_path):
    # the master takes its time: the old worker goes 0.5 s after the signal, a new one comes
    done = reloaded(tmp_path, "sleep 0.5; kill $OLD; exec -a 'nginx: worker process' sleep 60")
    assert "rc=0 " in done.stdout and "old worker gone" in done.stdout, done.stdout + done.stderr
    assert int(done.stdout.split("ms=")[1].split()[0]) >= 500, "it waited for the old worker"


def test_a_reload_whose_old_workers_keep_accepting_fails_naming_them(tmp_path):
    done = reloaded(tmp_path, "true")   # a master that never acts on the signal
    assert "rc=1 " in done.stdout and "old worker accepting" in done.stdout, done.stdout + done.stderr
    old = done.stdout.split("old=")[1].split()[0]
    assert f"nginx still serves with its old workers ( {old}) 10 s after the reload" in done.stderr
