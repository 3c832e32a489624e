"""
Manage the Compose stack as a whole: which commit it runs, and that its services are up.

Every operation here takes the stack as ``stack``:

+ stack: a ``facts.compose.Stack``: directory of the git checkout, compose project name,
  compose files and env file (relative to the directory unless absolute)
"""

from __future__ import annotations

import time

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, OperationError, QuoteString, StringCommand, operation

from facts.compose import ComposeServices, Stack, compose_command, project_containers_command
from facts.shell import assign
from facts.stack import StackRepo, StackTarget, git_command, valid_ref


def unknown_commit(ref: str, stack_dir: str, remotes: list[str]) -> str:
    return (
        f"commit {ref!r} is not in the repository at {stack_dir}"
        + (" (fetch it first: git -C DIR fetch)" if remotes else "")
        + "; nothing was changed"
    )


def uncommitted(stack_dir: str, dirty: list[str]) -> str:
    return (
        f"{stack_dir} has uncommitted changes ({', '.join(dirty)}); "
        "commit or stash them before moving the stack"
    )


def stale_services(services: dict) -> list[str]:
    """Services whose container is missing, stopped or built from another config."""
    return sorted(
        name for name, service in services.items()
        if service["state"] != "running" or service["config_hash"] != service["desired_hash"]
    )


def unready_services(services: dict) -> dict[str, str]:
    """Services not running, or running but not (yet) healthy, with what they are."""
    unready = {}
    for name, service in services.items():
        if service["state"] != "running":
            unready[name] = service["state"]
        elif service["health"] not in ("", "healthy"):
            unready[name] = service["health"]
    return unready


@operation()
def at_commit(stack: Stack, commit: str):
    """
    Run the stack at a commit: check it out, rebuild what it builds, recreate what changed.

    + stack: the stack (see the module docstring)
    + commit: a commit sha, tag or branch known to the stack's repository

    Builds go through Docker's cache, so only services whose build context changed are
    really rebuilt, and ``docker compose up -d --remove-orphans`` recreates only the
    containers whose config or image changed. Nothing happens when HEAD is the commit and
    every service runs from the compose config on disk. A working tree with uncommitted
    changes is refused, naming them.

    **Example:**

    .. code:: python

        stack.at_commit(
            name="Run Layra at the good release",
            stack=Stack("/srv/layra"),
            commit="v1.0.0",
        )
    """
    if not valid_ref(commit):
        raise OperationError(f"commit {commit!r} is not a valid git ref (sha, tag or branch)")

    repo = host.get_fact(StackRepo, stack_dir=stack.dir)
    if repo is None:
        raise OperationError(f"{stack.dir} is not a git repository with a commit checked out")

    target = host.get_fact(StackTarget, stack_dir=stack.dir, ref=commit)
    if target is None:
        raise OperationError(unknown_commit(commit, stack.dir, repo["remotes"]))

    if repo["dirty"]:
        raise OperationError(uncommitted(stack.dir, repo["dirty"]))

    services = host.get_fact(ComposeServices, stack=stack)
    stale = stale_services(services)
    if repo["commit"] == target["commit"] and not stale:
        host.noop(f"stack at {target['commit'][:12]} and all {len(services)} services up to date")
        return

    if repo["commit"] != target["commit"]:
        yield git_command(stack.dir, "checkout", "--quiet", "--detach", QuoteString(target["commit"]))
        yield compose_command(stack, "build", "--quiet")
    yield compose_command(stack, "up", "-d", "--remove-orphans", "--quiet-pull")


def wait_until_ready(state, host, stack: dict, timeout: int, interval: float = 1.0) -> bool:
    """Poll the services until all run and are healthy; False (and why) at the deadline."""
    stack = Stack.of(stack)
    deadline = time.monotonic() + timeout
    while True:
        services = host.get_fact(ComposeServices, stack=stack)
        unready = unready_services(services)
        if not unready:
            return True
        if time.monotonic() >= deadline:
            for name, status in sorted(unready.items()):
                last = services[name]["health_output"]
                logger.error(
                    f"{host.print_prefix}service {name} is {status} after {timeout}s"
                    + (f" (last healthcheck: {last})" if last else "")
                )
            return False
        time.sleep(interval)


@operation()
def services_ready(stack: Stack, timeout: int = 120):
    """
    Wait until every service of the stack runs and, where it has a healthcheck, is healthy.

    + stack: the stack (see the module docstring)
    + timeout: seconds to wait before failing, naming each service that is not ready
      and its last healthcheck output

    **Example:**

    .. code:: python

        stack.services_ready(
            name="Wait for Layra's services",
            stack=Stack("/srv/layra"),
            timeout=120,
        )
    """
    services = host.get_fact(ComposeServices, stack=stack)
    if not services:
        raise OperationError(f"the compose project {stack.project!r} at {stack.dir} has no services")
    unready = unready_services(services)
    if not unready:
        host.noop(f"all {len(services)} services running and healthy")
        return
    yield FunctionCommand(wait_until_ready, (stack.as_data(), timeout), {})


@operation(is_idempotent=False)
def state_saved(stack: Stack, directory: str):
    """
    Save what the stack is into a (partial) snapshot directory, under ``stack/``.

    + stack: the stack (see the module docstring)
    + directory: the snapshot directory on the host

    Writes ``commit``, ``diff.patch`` (uncommitted changes to tracked files), the compose
    files under ``compose/``, the env file as ``env``, ``containers.json`` (state, health,
    image id and config hash of each container, never their environment) and
    ``config-hashes``. Directory 0700, files 0600: the env file holds the stack's secrets.

    **Example:**

    .. code:: python

        stack.state_saved(
            name="Save the stack's state",
            stack=Stack("/srv/layra"),
            directory="/var/backups/layra/20261121T130000Z-pre-migration.partial",
        )
    """
    if not directory.startswith("/") or "\n" in directory:
        raise OperationError(f"directory {directory!r} must be an absolute path")
    copies = []
    for name in stack.files:
        source = name if name.startswith("/") else f"{stack.dir}/{name}"
        copies += ["cp --", QuoteString(source), '"$d/compose/" &&']
    yield StringCommand(
        "set -o pipefail;", assign(d=f"{directory}/stack"),
        'mkdir -p -m 0700 "$d/compose" &&',
        git_command(stack.dir, "rev-parse", "HEAD"), '> "$d/commit" &&',
        git_command(stack.dir, "diff", "HEAD"), '> "$d/diff.patch" &&',
        *copies,
        "cp --", QuoteString(stack.env_path), '"$d/env" &&',
        "(", project_containers_command(stack.project), ') > "$d/containers.json" &&',
        compose_command(stack, "config", "--hash", "'*'"), '> "$d/config-hashes" &&',
        'chmod 0600 "$d"/* "$d"/compose/* && chmod 0700 "$d" "$d/compose"',
        _shell_executable="bash",
    )
