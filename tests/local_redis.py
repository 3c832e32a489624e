"""This machine's redis-server (sandbox/up.sh installs it), for the tests that run the
Redis engine's shell against a real server."""

import contextlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: sandbox/up.sh installs it (apt-get install redis-server)")
    return found


@contextlib.contextmanager
def redis_server(directory: Path, *options: str):
    """A redis-server of this machine serving ``directory``, on a unix socket only; its
    ``redis-cli`` as a function."""
    private = tempfile.mkdtemp(prefix="layra-redis-")  # a socket path is at most 107 bytes
    sock = f"{private}/redis.sock"
    server = subprocess.Popen([tool("redis-server"), "--port", "0", "--unixsocket", sock, "--dir", str(directory),
                               "--save", "", "--logfile", f"{private}/redis.log", *options])

    def cli(*args: str) -> str:
        return subprocess.run([tool("redis-cli"), "-s", sock, *args], capture_output=True, text=True).stdout.strip()

    cli.sock = sock

    try:
        for _ in range(200):
            if cli("ping") == "PONG" or "NOAUTH" in cli("ping"):  # up, with requirepass or without
                break
            assert server.poll() is None, Path(f"{private}/redis.log").read_text()
            time.sleep(0.05)
        yield cli
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(private)
