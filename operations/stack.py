"""
Manage the Compose stack as a whole: which commit it runs, and that its services are up.

Every operation here takes the stack as ``stack``:

+ stack: a ``facts.compose.Stack``: directory of the git checkout, compose project name,
  compose files and env file (relative to the directory unless absolute)
"""

from __future__ import annotations

import json
import posixpath

from pyinfra import host
from pyinfra.api import (
    OperationError,
    QuoteString,
    StringCommand,
)

from facts.compose import (
    ComposeServices,
    ComposeTargetConfig,
    Stack,
    compose_command,
    project_containers_command,
    replaced_command,
    valid_service,
)
from facts.shell import assign
from facts.snapshots import PARTIAL_METADATA
from facts.stack import (
    ImagesPresent,
    StackRepo,
    StackTag,
    StackTarget,
    git_command,
    pinnable_image,
    valid_image_id,
    valid_ref,
)
from facts.volumes import library
from operations.arguments import checked_path
from operations.decorator import operation

# stack/metadata.json, inside the stack/ directory state_saved writes
METADATA_NAME = posixpath.basename(PARTIAL_METADATA)


def unknown_commit(ref: str, stack_dir: str, remotes: list[str], head: str | None = None) -> str:
    """What was asked, where it is missing and, given ``head``, what the host has instead."""
    return (
        f"commit {ref!r} is not in the repository at {stack_dir}"
        + (" (fetch it first: git -C DIR fetch)" if remotes else "")
        + "; nothing was changed"
        + (f" (the stack is at {head[:12]})" if head else "")
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


def image_returns(images: dict, present, target_config: dict, moves: bool = True) -> dict[str, dict]:
    """How each service with a recorded image gets back to it at the target commit.

    ``action`` is ``tag`` (the recorded id still exists and the target names the image
    plainly: point that name at it, no rebuild), ``rebuild`` (the service builds, the
    commit ``moves``, but the recorded image is ``gone`` or its name is ``unpinnable``) or
    ``compose`` (otherwise: compose uses the image the commit names as it is). Services
    the target does not run are left out.

    .. code:: python

        {"backend": {"recorded": "sha256:1a2b...", "image": "layra-backend",
                     "action": "tag", "reason": ""}}
    """
    names = target_config.get("images", {})
    builds = target_config.get("build_contexts", {})
    returns = {}
    for service, image_id in sorted(images.items()):
        if service not in names:
            continue
        reason = ("gone" if image_id not in present
                  else "unpinnable" if not pinnable_image(names[service]) else "")
        action = "tag" if not reason else "rebuild" if moves and service in builds else "compose"
        returns[service] = {"recorded": image_id, "image": names[service], "action": action, "reason": reason}
    return returns


def off_image(services: dict, images: dict, present) -> list[str]:
    """Services whose containers do not run the image recorded for them, where it still
    exists. A recorded image that is gone is not compared: after a rebuild the id differs
    for good, and the config hash says whether the service is current."""
    return sorted(
        name for name, image_id in images.items()
        if image_id in present and name in services
        and services[name]["state"] != "missing" and services[name]["image"] != image_id
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
def at_commit(stack: Stack, commit: str, images: dict[str, str] | None = None, rolling: dict | None = None):
    """
    Run the stack at a commit: check it out, rebuild what it builds, recreate what changed.

    + stack: the stack (see the module docstring)
    + commit: a commit sha, tag or branch known to the stack's repository
    + images: ``{service: image id}`` a snapshot recorded at this commit; services whose
      recorded image still exists return to it instead of being rebuilt
    + rolling: ``{"service": "backend", "nginx_service": "nginx", "timeout": 120}``: the
      service behind nginx is replaced rolling (``facts.compose.replaced_command``) before
      ``up``, so reads keep being served while the stack moves

    Builds go through Docker's cache, so only services whose build context changed are
    really rebuilt, and ``docker compose up -d --remove-orphans`` recreates only the
    containers whose config or image changed. Nothing happens when HEAD is the commit and
    every service runs from the compose config on disk. A working tree with uncommitted
    changes is refused, naming them.

    With ``images``, each service whose recorded id is still on the host gets its image
    name at the commit (``image:``, or ``<project>-<service>`` for a service that only
    builds) pointed at that id with ``docker tag``; only services that build and whose
    recorded image is gone, or not recorded, or named with ``${...}``, are rebuilt. Nothing
    happens either when, on top of the above, every such service already runs its
    recorded id; a recorded image that is gone is not compared (the rebuilt one differs
    for good).

    **Example:**

    .. code:: python

        stack.at_commit(
            name="Run Layra at the good release",
            stack=Stack("/srv/layra"),
            commit="v1.0.0",
        )

        stack.at_commit(
            name="Run Layra as snapshot 20261121T130000Z recorded it",
            stack=Stack("/srv/layra"),
            commit="1f0c2d9a4b5e6f708192a3b4c5d6e7f801234567",
            images={"backend": "sha256:1a2b3c..."},
        )
    """
    if not valid_ref(commit):
        raise OperationError(f"commit {commit!r} is not a valid git ref (sha, tag or branch)")
    images = dict(images or {})
    for service, image_id in images.items():
        if not valid_service(service):
            raise OperationError(f"images: {service!r} is not a compose service name")
        if not valid_image_id(image_id):
            raise OperationError(f"images: {service}: {image_id!r} is not an image id (sha256:<64 hex digits>)")

    repo = host.get_fact(StackRepo, stack_dir=stack.dir)
    if repo is None:
        raise OperationError(f"{stack.dir} is not a git repository with a commit checked out")

    target = host.get_fact(StackTarget, stack_dir=stack.dir, ref=commit)
    if target is None:
        raise OperationError(unknown_commit(commit, stack.dir, repo["remotes"], repo.get("commit")))

    if repo["dirty"]:
        raise OperationError(uncommitted(stack.dir, repo["dirty"]))

    services = host.get_fact(ComposeServices, stack=stack)
    stale = stale_services(services)
    present = set(host.get_fact(ImagesPresent, ids=sorted(set(images.values())))) if images else set()
    moves = repo["commit"] != target["commit"]
    if not moves and not stale and not off_image(services, images, present):
        gone = sorted(name for name, image_id in images.items() if image_id not in present)
        host.noop(f"stack at {target['commit'][:12]} and all {len(services)} services up to date"
                  + (f" ({len(images) - len(gone)} on their recorded image" if images else "")
                  + (f"; recorded image gone for {', '.join(gone)}" if gone else "")
                  + (")" if images else ""))
        return

    tags, build = [], [compose_command(stack, "build", "--quiet")]
    if images:
        # Everything is decided before the first command: a refusal changes nothing.
        target_config = host.get_fact(ComposeTargetConfig, stack=stack, ref=target["commit"])
        returns = image_returns(images, present, target_config)
        back = sorted(name for name, service in returns.items() if service["action"] == "tag")
        rebuild = sorted(set(target_config["build_contexts"]) - set(back))
        for name in rebuild:
            if not valid_service(name):
                raise OperationError(f"the compose files at {commit} name a service {name!r}, "
                                     "which is not a compose service name")
        # Tagged at the same commit too: `up` recreates any container whose image is not
        # the one its name points to.
        tags = [StringCommand("docker", "tag", QuoteString(returns[name]["recorded"]),
                              QuoteString(returns[name]["image"])) for name in back]
        build = [compose_command(stack, "build", "--quiet", *map(QuoteString, rebuild))] if rebuild else []

    if moves:
        yield git_command(stack.dir, "checkout", "--quiet", "--detach", QuoteString(target["commit"]))
    yield from tags
    if moves:
        yield from build
    if rolling:
        # replaced even when only other services change: a few seconds, never a gap
        replace = replaced_command(stack, rolling["service"], rolling.get("nginx_service"),
                                   int(rolling.get("timeout", 120)))
        if moves:
            # A release the replace refuses leaves the checkout where the running containers
            # are: a snapshot or a rollback taken next must not see the refused commit.
            back = repo["commit"]
            replace = StringCommand(
                "(", replace, ") || {", git_command(stack.dir, "checkout", "--quiet", "--detach", QuoteString(back)),
                "; echo", QuoteString(f"the stack's checkout is back at {back[:12]}, which its containers run"),
                ">&2; exit 1; }", _shell_executable="bash",
            )
        yield replace
    yield compose_command(stack, "up", "-d", "--remove-orphans", "--quiet-pull")


@operation()
def services_ready(stack: Stack, timeout: int = 120):
    """
    Wait until every service of the stack runs and, where it has a healthcheck, is healthy.

    + stack: the stack (see the module docstring)
    + timeout: seconds to wait before failing, naming the service that is not ready and
      its last healthcheck output

    Ready means what it means everywhere here (``facts/scripts/wait_ready.sh``): running,
    and healthy where a healthcheck is defined; an exited or unhealthy container fails
    at once, one still starting is waited for. The waiting happens on the host.

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
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise OperationError(f"timeout must be a whole number of seconds, got {timeout!r}")
    yield StringCommand(library(stack), "wait_ready", str(timeout), *(QuoteString(name) for name in sorted(services)),
                        _shell_executable="bash")


@operation(is_idempotent=False)
def state_saved(stack: Stack, directory: str, metadata: dict | None = None):
    """
    Save what the stack is into a (partial) snapshot directory, under ``stack/``.

    + stack: the stack (see the module docstring)
    + directory: the snapshot directory on the host
    + metadata: what the snapshot's manifest is to say besides its files, saved last as
      ``stack/metadata.json`` (``facts.snapshots.PARTIAL_METADATA``): a run that completes
      a snapshot another run started says what that run saw

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
    checked_path(directory, "directory")
    copies = []
    for name in stack.files:
        source = name if name.startswith("/") else f"{stack.dir}/{name}"
        copies += ["cp --", QuoteString(source), '"$d/compose/" &&']
    yield StringCommand(
        "set -o pipefail; umask 077;", assign(d=f"{directory}/stack"),
        'mkdir -p -m 0700 "$d/compose" &&',
        git_command(stack.dir, "rev-parse", "HEAD"), '> "$d/commit" &&',
        git_command(stack.dir, "diff", "HEAD"), '> "$d/diff.patch" &&',
        *copies,
        "cp --", QuoteString(stack.env_path), '"$d/env" &&',
        "(", project_containers_command(stack.project), ') > "$d/containers.json" &&',
        compose_command(stack, "config", "--hash", "'*'"), '> "$d/config-hashes" &&',
        # umask 077 made every file 0600 and directory 0700 from its creation; files only, here
        'find "$d" -type f ! -perm 0600 -exec chmod 0600 {} +',
        # last: its presence says the stack's state is whole
        *(["&& printf '%s'", QuoteString(json.dumps(metadata, sort_keys=True)),
           f'> "$d/{METADATA_NAME}.tmp" && mv "$d/{METADATA_NAME}.tmp" "$d/{METADATA_NAME}"']
          if metadata is not None else []),
        _shell_executable="bash",
    )


@operation()
def tagged(stack: Stack, tag: str, commit: str, message: str):
    """
    Tag a commit of the stack's repository with an annotated tag: where a rollback took it.

    + stack: the stack (see the module docstring)
    + tag: the tag's name, e.g. ``rollback-20261121T130000Z``
    + commit: the commit sha, tag or branch to tag
    + message: the tag's message: who rolled back to what, in which run

    The tagger is ``layra-rollback <layra-rollback@localhost>``, so the host needs no git
    identity. Nothing happens when the tag already points at the commit; a tag of that
    name on another commit is refused, never moved.

    **Example:**

    .. code:: python

        stack.tagged(
            name="Tag the rollback",
            stack=Stack("/srv/layra"),
            tag="rollback-20261121T130000Z",
            commit="1f0c2d9a4b5e6f708192a3b4c5d6e7f801234567",
            message="layra-rollback: rolled back to snapshot 20261120T020000Z by alice@laptop",
        )
    """
    if not valid_ref(tag) or "/" in tag:
        raise OperationError(f"tag {tag!r} is not a valid tag name (letters, digits, '.', '_', '-')")
    if not valid_ref(commit):
        raise OperationError(f"commit {commit!r} is not a valid git ref (sha, tag or branch)")
    if not isinstance(message, str) or not message.strip():
        raise OperationError(f"tag {tag}: the message must say why the tag is there")

    target = host.get_fact(StackTarget, stack_dir=stack.dir, ref=commit)
    if target is None:
        raise OperationError(f"commit {commit!r} is not in the repository at {stack.dir}; no tag was made")
    existing = host.get_fact(StackTag, stack_dir=stack.dir, tag=tag)
    if existing == target["commit"]:
        host.noop(f"tag {tag} already points at {target['commit'][:12]}")
        return
    if existing is not None:
        raise OperationError(f"tag {tag} already points at {existing[:12]}, not {target['commit'][:12]}; "
                             "it is left as is: choose another tag name")
    yield git_command(
        stack.dir, "-c", "user.name=layra-rollback", "-c", "user.email=layra-rollback@localhost",
        "tag", "-a", "-m", QuoteString(message), QuoteString(tag), QuoteString(target["commit"]),
    )
