"""
Manage a stack's maintenance mode (write quiesce): writes answer 503, reads are served.

Three things make it, each brought to the wanted state on its own:

+ the env file's ``MAINTENANCE_MODE`` (``true`` or ``false``), which compose hands to the
  backend service (its compose file must pass ``MAINTENANCE_MODE`` through)
+ the backend's running containers, recreated when they were created with another value
  (a rolling replace behind nginx, so reads never stop)
+ optionally an nginx drop-in, included inside ``server { }``, that answers writes with 503
  before they reach the backend

Health and auth paths stay open to writes, in the backend and in the drop-in: the
runbook's rule (operators can still log in). Values never leave the host: the env file
is edited in place through a temporary file, and of each container's environment only
``MAINTENANCE_MODE`` is read.
"""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import OperationError, QuoteString, StringCommand

from facts.compose import Stack, compose_command, replaced_command
from facts.maintenance import (
    DROPIN_CONTENT,
    DROPIN_MARKER,
    KEY,
    MaintenanceState,
    container_values_command,
    dropin_path,
    running_ids,
    settings_problem,
)
from facts.shell import assign, script
from operations.decorator import operation


def env_set(stack: Stack, value: str) -> StringCommand:
    """Set ``KEY=value`` in the env file: replace its line(s) or append one. Every other
    byte stays; mode and owner too (``cp -p`` to a temporary file beside it, written, then
    renamed over it). Nothing of the file is printed."""
    line = f"{KEY}={value}"
    return StringCommand(
        assign(f=stack.env_path),
        'fail() { echo "$*" >&2; exit 1; };',
        '[ -f "$f" ] || fail', QuoteString(f"no env file at {stack.env_path}"), ";",
        'f=$(readlink -f -- "$f") && tmp=$(mktemp "$(dirname -- "$f")/.$(basename -- "$f").XXXXXX")',
        "|| fail", QuoteString(f"cannot create a temporary file beside {stack.env_path}"), ";",
        "trap 'rm -f \"$tmp\"' EXIT;",
        'cp -p -- "$f" "$tmp" &&',
        "if grep -q", QuoteString(f"^{KEY}="), '"$f";',
        "then LC_ALL=C sed", QuoteString(f"s/^{KEY}=.*$/{line}/"), '"$f" >"$tmp";',
        'else { cat -- "$f" && if [ -n "$(tail -c 1 -- "$f")" ]; then echo; fi && echo', QuoteString(line),
        '; } >"$tmp"; fi &&',
        'mv -f -- "$tmp" "$f"',
        "|| fail", QuoteString(f"could not write {line} to {stack.env_path}"),
    )


def containers_checked(stack: Stack, service: str, value: str) -> StringCommand:
    """Fail unless every running container of the service has ``KEY=value``."""
    return StringCommand(
        running_ids(stack, service), '&& [ -n "$ids" ] &&', container_values_command(),
        "| awk", QuoteString(f"$2 != \"{KEY}={value}\" {{bad = 1}} END {{exit bad}}"),
        "|| { echo", QuoteString(
            f"{service}'s containers do not run with {KEY}={value} after being recreated: "
            f"does the compose file pass {KEY} from the env file to {service}?"
        ), ">&2; exit 1; }",
    )


def dropin_changed(stack: Stack, nginx_service: str, path: str, enabled: bool) -> StringCommand:
    """Write (atomically) or remove the drop-in, then test and reload nginx, and wait until
    it serves the new configuration.

    A written drop-in that nginx rejects, or does not load at all (its directory is not
    mounted, or not included), is removed again, nginx reloaded, and the command fails
    with nginx's message."""
    ngx = ["ngx() {", compose_command(stack, "exec", "-T", QuoteString(nginx_service), "nginx", '"$@"'), "; };"]
    if enabled:
        change = [
            '[ -d "$(dirname -- "$f")" ] || fail "no directory for the nginx drop-in $f";',
            'tmp=$(mktemp "$(dirname -- "$f")/.$(basename -- "$f").XXXXXX") &&',
            "printf '%s'", QuoteString(DROPIN_CONTENT), '>"$tmp" && chmod 0644 "$tmp" && mv -f "$tmp" "$f"',
            '|| { rm -f "$tmp"; fail "could not write the nginx drop-in $f"; };',
            'out=$(ngx -t -q 2>&1) || { rm -f "$f"; ngx -s reload;',
            'fail "nginx rejects the maintenance drop-in $f (removed it again): $out"; };',
            "ngx -T 2>/dev/null | grep -qF", QuoteString(DROPIN_MARKER),
            '|| { rm -f "$f"; fail "nginx does not load $f (removed it again): mount its directory into',
            'the nginx container and include it inside server { }"; };',
        ]
    else:
        change = [
            'rm -f -- "$f" || fail "could not remove the nginx drop-in $f";',
            'out=$(ngx -t -q 2>&1) || fail "nginx configuration fails its test without the drop-in: $out";',
        ]
    # reloaded: once nginx serves the new configuration, not when it was told to
    # (scripts/nginx_reload.sh)
    reloaded = compose_command(stack, "exec", "-T", QuoteString(nginx_service), "sh", "-c",
                               QuoteString(script("nginx_reload", "operations")))
    return StringCommand(
        "umask 022;", assign(f=path),
        'fail() { echo "$*" >&2; exit 1; };', *ngx, *change, reloaded,
    )


def describe(service: str, containers: int, dropin: bool) -> str:
    """``env file, 1 backend container and the nginx drop-in``"""
    running = f"{containers} {service} container{'s' * (containers != 1)}" if containers else f"no running {service} container"
    return f"env file, {running} and the nginx drop-in" if dropin else f"env file and {running}"


@operation()
def mode(stack: Stack, enabled: bool, service: str = "backend", nginx_service: str | None = None,
         dropin: str | None = None, timeout: int = 120, at_nginx_only: bool = False):
    """
    Switch the stack's maintenance mode (write quiesce) on or off.

    + stack: a ``facts.compose.Stack``: directory, compose project, files and env file
    + enabled: ``True`` for maintenance on (writes answer 503), ``False`` for off
    + service: the backend's compose service, which reads ``MAINTENANCE_MODE``
    + nginx_service: the nginx service in front of it (``None``: the backend is not behind
      nginx); goes with ``dropin``
    + dropin: the drop-in file, relative to the stack directory unless absolute, in a
      directory that nginx's configuration includes inside ``server { }`` (bind-mounted)
    + timeout: seconds a recreated container gets to become healthy
    + at_nginx_only: on, with nginx in front: only the drop-in (writes stop at nginx at
      once, the backend is not replaced: a rollback's window, seconds shorter); off is
      always whole

    Nothing happens when the env file, every running container of ``service`` and the
    drop-in are already in the wanted state. On, the drop-in comes first (writes stop at
    nginx at once), then the env file, then the containers; off, the reverse order.
    Containers are recreated only when their ``MAINTENANCE_MODE`` differs, and only that
    service: behind nginx by a rolling replace (``facts.compose.replaced_command``), so
    reads keep being served; a new container that does not become healthy is removed and
    the old one keeps serving. A drop-in nginx rejects or does not load is removed again.
    A service that runs no container only gets the env file (it reads it when it starts).

    **Example:**

    .. code:: python

        maintenance.mode(
            name="Maintenance on",
            stack=Stack("/srv/layra"),
            enabled=True,
            nginx_service="nginx",
            dropin="nginx/layra.d/maintenance.conf",
        )
    """
    if not isinstance(enabled, bool):
        raise OperationError(f"enabled must be True or False, got {enabled!r}")
    problem = settings_problem(service, nginx_service, dropin)
    if problem:
        raise OperationError(problem)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise OperationError(f"timeout must be a whole number of seconds, got {timeout!r}")
    stack = Stack.of(stack)

    if at_nginx_only and dropin is None:
        raise OperationError("at_nginx_only needs nginx in front: nginx_service and dropin")
    wanted = "true" if enabled else "false"
    state = host.get_fact(MaintenanceState, stack=stack, service=service, dropin=dropin)
    nginx_only = at_nginx_only and enabled
    env_ok = nginx_only or state["env_file"] == wanted
    stale = [] if nginx_only else sorted(cid for cid, value in state["containers"].items() if value != wanted)
    dropin_ok = dropin is None or state["dropin"] == ("ours" if enabled else "absent")
    word = "on" if enabled else "off"
    if env_ok and not stale and dropin_ok:
        host.noop(f"maintenance already on at nginx: the drop-in ({service} not replaced: it writes only "
                  "through nginx)" if nginx_only else
                  f"maintenance already {word}: {describe(service, len(state['containers']), dropin is not None)}")
        return

    changes = (["nginx drop-in"] if not dropin_ok else []) + (["env file"] if not env_ok else []) + (
        [f"{len(stale)} {service} container{'s' * (len(stale) != 1)} ({', '.join(stale)})"] if stale else [])
    logger.info(f"{host.print_prefix}maintenance {word}: " + ", ".join(changes))
    if dropin is not None and state["dropin"] == "other":
        logger.warning(f"{host.print_prefix}{dropin_path(stack, dropin)} is not layra-rollback's drop-in: "
                       + ("overwriting it" if enabled else "removing it"))

    path = dropin_path(stack, dropin) if dropin is not None else None
    if enabled and not dropin_ok:
        yield dropin_changed(stack, nginx_service, path, enabled=True)
    if not env_ok:
        yield env_set(stack, wanted)
    if stale:
        yield replaced_command(stack, service, nginx_service, timeout)
        yield containers_checked(stack, service, wanted)
    if not enabled and not dropin_ok:
        yield dropin_changed(stack, nginx_service, path, enabled=False)
