"""
pyinfra's CLI, run exactly as ``python -m pyinfra`` runs it, with every remote command counted.

    python tests/reliability/counted_pyinfra.py LOG [pyinfra arguments...]
    python tests/reliability/counted_pyinfra.py LOG --layra-rollback [layra-rollback arguments...]

Each SSH connection, command, upload and download of pyinfra's SSH connector is appended to
LOG as one JSON line (``{"pid", "host", "kind", "what"}``, kind one of connect, run, put,
get) before it happens: a run that logs no run/put/get line sent nothing to any host. The
start of pyinfra's execution stage (``run_ops``, after every host's plan) is logged too, as
kind ``execute``: a run that logs none never ran an operation.

With ``--layra-rollback`` the project's CLI runs in-process instead, and the pyinfra runs it
starts (``python -m pyinfra ...`` subprocesses) go through this file with the same LOG.

    python tests/reliability/counted_pyinfra.py --serve

runs many pyinfra runs without paying for the interpreter and pyinfra's imports each time:
it imports what ``python -m pyinfra`` imports before it calls ``main()`` (pyinfra, then
pyinfra_cli, whose package patches the standard library for gevent) and nothing else, then
for each request on stdin (one JSON line: ``{"log", "arguments", "cwd", "env", "output"}``)
forks a child that is that process at that point: it takes the request's directory,
environment and arguments, writes its output to ``output`` and runs ``main()`` exactly as
above (or, with ``"cli": true``, imports and runs the project's CLI as ``--layra-rollback``
does: it imports pyinfra_cli first too). Its exit status comes back on stdout as one JSON
line (``{"returncode"}``).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import traceback

HERE = os.path.abspath(__file__)


def logged(log: str):
    """``record(host, kind, what)``: one JSON line appended to ``log`` (one write, O_APPEND:
    lines of concurrent processes and greenlets never interleave)."""

    def record(host, kind: str, what) -> None:
        line = json.dumps({"pid": os.getpid(), "host": getattr(host, "name", str(host)), "kind": kind,
                           "what": str(what)}) + "\n"
        descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(descriptor, line.encode())
        finally:
            os.close(descriptor)

    return record


def count_ssh(log: str) -> None:
    """Wrap pyinfra's SSH connector so each connection and remote action is logged first."""
    from pyinfra.connectors.ssh import SSHConnector

    record = logged(log)
    connect, run_shell_command = SSHConnector.connect, SSHConnector.run_shell_command
    put_file, get_file = SSHConnector.put_file, SSHConnector.get_file

    def counted_connect(self, *args, **kwargs):
        record(self.host, "connect", self.data.get("ssh_hostname") or self.host.name)
        return connect(self, *args, **kwargs)

    def counted_run(self, command, *args, **kwargs):
        record(self.host, "run", command)
        return run_shell_command(self, command, *args, **kwargs)

    def counted_put(self, filename_or_io, remote_filename, *args, **kwargs):
        record(self.host, "put", remote_filename)
        return put_file(self, filename_or_io, remote_filename, *args, **kwargs)

    def counted_get(self, remote_filename, filename_or_io, *args, **kwargs):
        record(self.host, "get", remote_filename)
        return get_file(self, remote_filename, filename_or_io, *args, **kwargs)

    SSHConnector.connect = counted_connect
    SSHConnector.run_shell_command = counted_run
    SSHConnector.put_file = counted_put
    SSHConnector.get_file = counted_get


def count_execution(log: str) -> None:
    """Log the start of the execution stage: pyinfra's CLI calls ``run_ops`` only to execute."""
    import pyinfra_cli.cli

    record, run_ops = logged(log), pyinfra_cli.cli.run_ops

    def counted_run_ops(state, *args, **kwargs):
        record("*", "execute", "run_ops")
        return run_ops(state, *args, **kwargs)

    pyinfra_cli.cli.run_ops = counted_run_ops


def imported_as_python_m_pyinfra():
    """What ``python -m pyinfra`` has imported when it calls main(): the pyinfra package, then
    pyinfra/__main__.py's ``from pyinfra_cli.main import main``, whose package patches the
    standard library for gevent before anything else of the CLI (paramiko included)."""
    import pyinfra  # noqa: F401  (runpy imports the package first)
    from pyinfra_cli.main import main

    return main


def pyinfra(log: str, arguments: list[str]) -> None:
    # `python -m pyinfra`: sys.path[0] is the working directory, argv[0] the module's file
    sys.path[0] = os.getcwd()
    import pyinfra

    main = imported_as_python_m_pyinfra()

    sys.argv = [os.path.join(os.path.dirname(pyinfra.__file__), "__main__.py"), *arguments]
    count_ssh(log)
    count_execution(log)
    main()


def layra_rollback(log: str, arguments: list[str]) -> None:
    import subprocess

    import gevent.subprocess

    from pyinfra_deploys.cli import (
        main,  # imports pyinfra_cli first: gevent's patches in place
    )

    count_ssh(log)  # the commands that connect in-process (watch, triggers check)
    popen = subprocess.Popen  # gevent's, once patched

    class CountedPopen(popen):
        """``python -m pyinfra ARGS`` becomes ``python counted_pyinfra.py LOG ARGS``."""

        def __init__(self, args, *rest, **kwargs):
            if isinstance(args, (list, tuple)) and list(args[:3]) == [sys.executable, "-m", "pyinfra"]:
                args = [sys.executable, HERE, log, *args[3:]]
            super().__init__(args, *rest, **kwargs)

    # subprocess.run is gevent's once patched, and it calls gevent.subprocess.Popen
    subprocess.Popen = gevent.subprocess.Popen = CountedPopen
    sys.argv = ["layra-rollback", *arguments]
    main()


def child(request: dict):
    """In a forked child of ``serve``: run the request's pyinfra command; never returns."""
    code = 1
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        output = os.open(request["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(output, 1)
        os.dup2(output, 2)
        (layra_rollback if request.get("cli") else pyinfra)(os.path.abspath(request["log"]), request["arguments"])
        code = 0
    except SystemExit as exit:
        if exit.code is None or isinstance(exit.code, int):
            code = exit.code or 0
        else:
            print(exit.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - what the interpreter would print, then exit 1
        traceback.print_exc()
    finally:
        # as the interpreter exits: atexit handlers (the run record's), then the buffers
        try:
            atexit._run_exitfuncs()
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:  # noqa: BLE001
                    pass
            os._exit(code)


def serve() -> None:
    sys.path[0] = os.getcwd()
    imported_as_python_m_pyinfra()
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(request)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
        sys.exit(0)
    if len(sys.argv) < 2:
        sys.exit(f"usage: {sys.argv[0]} LOG [--layra-rollback] ARGUMENTS... | --serve")
    log_file, rest = os.path.abspath(sys.argv[1]), sys.argv[2:]
    if rest[:1] == ["--layra-rollback"]:
        layra_rollback(log_file, rest[1:])
    else:
        pyinfra(log_file, rest)
