"""
`layra-rollback snapshots ...`: list, verify and prune the snapshots on an inventory's hosts.

Each command runs pyinfra itself, as an operator would (``python -m pyinfra -y ...``),
in a subprocess: the inventory, its SSH settings and host-key checking, ``--limit``
and the connectors are pyinfra's own, and gevent stays out of this process.

- ``list``: ``pyinfra INVENTORY fact facts.snapshots.SnapshotCatalog root=ROOT --json``
- ``verify``: ``pyinfra INVENTORY operations.snapshots.verified '[[], {...}]'``
- ``prune``: the catalog as for ``list``, ``to_prune`` to show what goes, then
  ``pyinfra INVENTORY operations.snapshots.pruned '[[], {...}]'``

The snapshot root is ``--root``, else each host's ``layra_snapshot_root`` (read with
``pyinfra INVENTORY debug-inventory --json``), else ``/var/backups/layra``. Hosts are
grouped by root: one pyinfra run per distinct root.
"""

from __future__ import annotations

import json
import re
import sys
from fnmatch import fnmatch

import click

from facts.snapshots import (
    DEFAULT_ROOT,
    ROOT_RULE,
    SNAPSHOT_ID_RULE,
    valid_root,
    valid_snapshot_id,
)
from facts.text import human_size
from operations.snapshots import by_age, to_prune

from ..pyinfra_run import host_lines, pyinfra, pyinfra_error

ROOT_KEY = "layra_snapshot_root"
CATALOG_FACT = "facts.snapshots.SnapshotCatalog"


# Plain helpers (tested in tests/test_catalog.py)


def select_hosts(hosts: list[dict], limit: tuple[str, ...]) -> list[dict]:
    """The hosts pyinfra's ``--limit`` would keep: a group name, or a glob on the host name."""
    if not limit:
        return list(hosts)
    return [
        host for host in hosts
        if any(pattern in host.get("groups", []) or fnmatch(host["name"], pattern) for pattern in limit)
    ]


def root_of(host: dict, root: str | None) -> str:
    """``root``, else the host's ``layra_snapshot_root``, else the default; a malformed host
    data root is refused (ClickException naming the host and the key) before pyinfra runs."""
    chosen = root or (host.get("data") or {}).get(ROOT_KEY) or DEFAULT_ROOT
    if not valid_root(chosen):
        raise click.ClickException(f"{host.get('name')}: host data {ROOT_KEY!r} must be {ROOT_RULE}, got {chosen!r}")
    return chosen


def runs_by_root(hosts: list[dict], limit: tuple[str, ...], root: str | None) -> list[tuple[str, tuple[str, ...]]]:
    """``[(root, limit)]``: one pyinfra run per distinct root, with the ``--limit`` it needs.

    When every selected host shares a root, the operator's own ``--limit`` is passed on
    untouched; otherwise each run names its hosts.
    """
    selected = select_hosts(hosts, limit)
    roots: dict[str, list[str]] = {}
    for host in selected:
        roots.setdefault(root_of(host, root), []).append(host["name"])
    if len(roots) <= 1:
        return [(next(iter(roots), root or DEFAULT_ROOT), tuple(limit))]
    return [(each, tuple(names)) for each, names in sorted(roots.items())]


def table(catalog: dict) -> list[str]:
    """One host's catalog as aligned lines, oldest snapshot first."""
    snapshots = catalog["snapshots"]
    rows = [("ID", "CREATED", "LABEL", "COMMIT", "SIZE", "PARTS", "VERIFIED")]
    for snapshot_id in by_age(snapshots):
        entry = snapshots[snapshot_id]
        rows.append((
            snapshot_id,
            entry.get("created") or "?",
            entry.get("label") or "-",
            (entry.get("commit") or "-")[:7],
            human_size(entry.get("size")),
            ", ".join(entry.get("parts") or []) or "-",
            entry.get("verified_at") or "no",
        ))
    lines = []
    if len(rows) > 1:
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    else:
        lines.append("no complete snapshots")
    lines += [f"partial: {sid} (unfinished; `snapshots prune` removes it)" for sid in catalog.get("partials", [])]
    lines += [f"broken: {sid} (no readable manifest.json; left alone)" for sid in catalog.get("broken", [])]
    return lines


# Running pyinfra


def inventory_hosts(inventory: str) -> list[dict]:
    result = pyinfra(inventory, "debug-inventory", "--json")
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise click.ClickException(f"cannot read the inventory {inventory}: {pyinfra_error(result)}")


def plan_runs(inventory: str, limit: tuple[str, ...], root: str | None):
    if root:
        return [(root, tuple(limit))]
    return runs_by_root(inventory_hosts(inventory), limit, None)


def catalogs(inventory: str, limit: tuple[str, ...], root: str | None) -> dict[str, dict]:
    """``{host: {"root": ..., "snapshots": ..., "partials": ..., "broken": ...}}``."""
    found: dict[str, dict] = {}
    for each_root, each_limit in plan_runs(inventory, limit, root):
        result = pyinfra(inventory, "fact", CATALOG_FACT, f"root={each_root}", "--json", limit=each_limit)
        try:
            by_fact = json.loads(result.stdout)
        except ValueError:
            raise click.ClickException(f"listing snapshots under {each_root} failed: {pyinfra_error(result)}")
        for per_host in by_fact.values():
            for host_name, catalog in per_host.items():
                if catalog is None:
                    raise click.ClickException(f"{host_name}: could not read the catalog under {each_root}")
                found[host_name] = {"root": each_root, **catalog}
    return found


def operation_args(**kwargs) -> str:
    """pyinfra's JSON form of an operation's arguments: values keep their types."""
    return json.dumps([[], kwargs])


# The click group

inventory_argument = click.argument("inventory", type=click.Path(exists=True, dir_okay=False))
limit_option = click.option("--limit", multiple=True, metavar="HOST|GROUP",
                            help="Only these hosts (a name, a glob or a group; repeatable), as pyinfra's --limit.")


def checked_root(ctx, param, value):
    if value is not None and not valid_root(value):
        raise click.BadParameter(f"{value!r} must be {ROOT_RULE}")
    return value


root_option = click.option("--root", default=None, metavar="DIR", callback=checked_root,
                           help=f"Snapshot root (default: host data {ROOT_KEY}, else {DEFAULT_ROOT}).")


@click.group("snapshots", context_settings={"help_option_names": ["-h", "--help"]})
def snapshots():
    """List, verify and prune the snapshots on an inventory's hosts (runs pyinfra)."""


@snapshots.command("list")
@inventory_argument
@limit_option
@root_option
@click.option("--json", "as_json", is_flag=True, help="Print the catalogs as JSON, by host.")
def list_snapshots(inventory, limit, root, as_json):
    """Print each host's snapshots: id, created, label, commit, size, parts, verified."""
    found = catalogs(inventory, limit, root)
    if as_json:
        click.echo(json.dumps(found, indent=2, sort_keys=True))
        return
    for host_name, catalog in sorted(found.items()):
        click.echo(f"{host_name}  {catalog['root']}")
        for line in table(catalog):
            click.echo(f"  {line}")


@snapshots.command("verify")
@inventory_argument
@click.argument("snapshot_id", metavar="ID")
@limit_option
@root_option
def verify_snapshot(inventory, snapshot_id, limit, root):
    """Check snapshot ID against its manifest on each host; fail naming every bad file."""
    if not valid_snapshot_id(snapshot_id):
        raise click.BadParameter(f"{snapshot_id!r} is not a snapshot id: it must be {SNAPSHOT_ID_RULE}",
                                 param_hint="ID")
    failed = False
    for each_root, each_limit in plan_runs(inventory, limit, root):
        result = pyinfra(inventory, "operations.snapshots.verified",
                         operation_args(root=each_root, snapshot_id=snapshot_id),
                         limit=each_limit, verbose=True)
        # One line per host that passed, one per problem on a host that did not (the
        # operation's closing "does not match" line repeats them, so it is left out).
        lines = host_lines(result.stdout + result.stderr, rf"^(noop: )?snapshot {re.escape(snapshot_id)}\b")
        for host_name, message in lines:
            if " does not match its manifest " not in message:
                click.echo(f"{host_name}: {message.removeprefix('noop: ')}")
        if result.returncode != 0:
            failed = True
            if not any(" does not match its manifest " in message for _, message in lines):
                click.echo(f"error: {pyinfra_error(result)}", err=True)
    if failed:
        sys.exit(1)


@snapshots.command("prune")
@inventory_argument
@click.option("--keep", type=click.IntRange(min=1), required=True, metavar="N",
              help="How many complete snapshots to keep per host (the newest; never fewer than 1).")
@limit_option
@root_option
@click.option("--dry-run", is_flag=True, help="Only show what would be removed.")
def prune_snapshots(inventory, keep, limit, root, dry_run):
    """Remove all but the newest N snapshots per host, and unfinished (.partial) ones.

    The newest snapshot verified by `snapshots verify` (or a backup) is kept even
    when newer ones fill N.
    """
    found = catalogs(inventory, limit, root)
    anything = False
    for host_name, catalog in sorted(found.items()):
        remove = to_prune(catalog, keep)
        for snapshot_id in remove:
            entry = catalog["snapshots"][snapshot_id]
            click.echo(f"{host_name}: remove {snapshot_id} (created {entry.get('created')}, "
                       f"{human_size(entry.get('size'))})")
        for snapshot_id in catalog["partials"]:
            click.echo(f"{host_name}: remove {snapshot_id}.partial (unfinished)")
        kept = len(catalog["snapshots"]) - len(remove)
        click.echo(f"{host_name}: keep {kept} snapshot{'s' * (kept != 1)} under {catalog['root']}")
        anything = anything or bool(remove or catalog["partials"])
    if dry_run or not anything:
        if dry_run:
            click.echo("dry run: nothing removed")
        return
    failed = False
    for each_root, each_limit in plan_runs(inventory, limit, root):
        result = pyinfra(inventory, "operations.snapshots.pruned", operation_args(root=each_root, keep=keep),
                         limit=each_limit, verbose=True)
        for host_name, message in host_lines(result.stdout + result.stderr, r"^(prune |noop: nothing to prune)"):
            click.echo(f"{host_name}: {message.removeprefix('noop: ')}")
        if result.returncode != 0:
            failed = True
            click.echo(f"error: {pyinfra_error(result)}", err=True)
    if failed:
        sys.exit(1)
