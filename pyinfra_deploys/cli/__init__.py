"""
`layra-rollback`: the operator's commands around the pyinfra deploys.

The deploys themselves run through pyinfra (`pyinfra INVENTORY rollback.py ...`);
this CLI reads what they leave behind.
"""

from __future__ import annotations

# pyinfra's CLI patches the standard library for gevent on import; it must come before
# anything opens a socket (the watcher reaches hosts through pyinfra's API).
import pyinfra_cli  # noqa: F401  isort: skip

import json
import sys
from pathlib import Path

import click

from .. import components as proposals
from ..plan import describe
from ..report import (
    RecordError,
    load_record,
    render_html,
    render_markdown,
    write_reports,
)
from . import rehearsal, snapshots, triggers


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="layra-rollback")
def main():
    """Back up, roll back and verify a Layra Docker Compose stack, with pyinfra.

    \b
    Run the deploys with pyinfra against an inventory:
      pyinfra inventories/prod.py backup.py --data label=pre-release
      pyinfra inventories/prod.py rollback.py --data snapshot=latest --dry
      pyinfra inventories/prod.py rollback.py --data snapshot=latest
      pyinfra inventories/prod.py verify.py --data snapshot=latest
      pyinfra inventories/prod.py maintenance.py --data maintenance=off
      pyinfra inventories/prod.py migrate.py --data commit=<new>
    Watch the trigger rules and roll back by itself on a CRITICAL one:
      layra-rollback watch --inventory inventories/prod.py --snapshot latest
    Rehearse a rollback on staging from a production snapshot:
      layra-rollback rehearse --staging inventories/staging.py --source inventories/prod.py --snapshot ID
    Every rollback and verify run writes runs/<run id>/record.json
    (LAYRA_RUNS_DIR moves it); `report` renders it.
    """


@main.command("plan")
@click.argument("plan_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def show_plan(plan_file: Path):
    """Print a plan written by a dry run (`--data plan_out=FILE`), host by host."""
    try:
        plan = json.loads(plan_file.read_text())
        hosts = plan["hosts"]
    except (ValueError, KeyError) as error:
        raise click.ClickException(f"{plan_file} is not a plan file written by --data plan_out: {error}")
    for host_name, components in sorted(hosts.items()):
        click.echo(host_name)
        for component in components:
            for line in describe(component):
                click.echo(f"  {line}")


class ComposeFileError(click.ClickException):
    exit_code = 2


@main.command("components")
@click.option("--compose", "compose_file", required=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path), help="The stack's docker-compose.yml.")
@click.option("--format", "output_format", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True,
              help="yaml: the map, then `#` comment lines; json: the map on stdout, the comments on stderr.")
def propose_components(compose_file: Path, output_format: str):
    """Propose the inventory's `layra_components` from a compose file.

    \b
    Reads FILE only (no env file, no host, nothing runs) and classifies each
    service by its image, by its name when the image says nothing:
      mysql/mariadb/percona, mongo, redis/valkey, qdrant  -> that engine
      milvus + its etcd and MinIO, minio, kafka (+ zookeeper)
        -> the volumes engine, one set per group joined by depends_on
           or a shared named volume (they stop and restore together)
      any other service with a named volume -> not classified
      no named volume -> stateless (bind mounts are noted, never archived)

    \b
    Prints a `layra_components:` block to paste into host data, then comment
    lines: what to fill in, what could not be classified and why, the
    stateless services, bind mounts, and the reason for each component.

    \b
    What a compose file cannot tell:
      credentials: a password_key is proposed only where a ${VAR} visibly
        feeds the password (MYSQL_ROOT_PASSWORD, MONGO_INITDB_ROOT_PASSWORD,
        --requirepass); values are never read or printed
      databases: only a literal MYSQL_DATABASE/MARIADB_DATABASE; one set in
        the env file must be named by hand (none is backed up until it is)
      Redis: cache or state (rdb), and which keys are caches (Layra's
        patterns are proposed)

    \b
    Exit codes:
      0  every service classified (an engine or stateless)
      2  FILE missing, unreadable, not YAML, or without `services:`
      3  some service could not be classified (named in the comments)
    """
    try:
        proposal = proposals.propose(proposals.load(compose_file))
    except proposals.ComposeError as error:
        raise ComposeFileError(str(error))
    notes = "\n".join(proposals.comments(proposal))
    if output_format == "json":
        click.echo(json.dumps({"layra_components": proposal.components}, indent=2))
        click.echo(notes, err=True)
    else:
        click.echo(proposals.as_yaml(proposal) + notes)
    sys.exit(3 if proposal.unclassified else 0)


@main.command("report")
@click.argument("run")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), envvar="LAYRA_RUNS_DIR",
              default="runs", show_default=True, help="Where runs are recorded (env LAYRA_RUNS_DIR).")
@click.option("--format", "output_format", type=click.Choice(["md", "html", "all"]), default="all",
              show_default=True, help="md: report.md and postmortem.md; html: report.html; all: the three.")
@click.option("--stdout", is_flag=True,
              help="Print the report (Markdown; HTML with --format html) instead of writing files.")
def show_report(run: str, runs_dir: Path, output_format: str, stdout: bool):
    """Render a run's report from its record: RTO figures, timeline, hosts, checks.

    \b
    RUN is a run id in the runs directory (or a unique prefix of one, or
    `latest`), a run directory, or a record.json path. Writes beside the
    record, and prints their paths:
      report.md      the report in Markdown
      report.html    the same, self-contained, with SVG charts
      postmortem.md  the runbook's post-mortem template, filled where the
                     record knows, [placeholder: ...] elsewhere

    \b
    Exit codes:
      0  rendered (whatever the run's own status)
      2  no such run, or its record is unreadable or not a JSON run record
    """
    try:
        record, path = load_record(run, runs_dir)
    except RecordError as error:
        raise click.BadParameter(str(error), param_hint="RUN")
    if stdout:
        click.echo(render_html(record) if output_format == "html" else render_markdown(record), nl=False)
        return
    formats = ("md", "html") if output_format == "all" else (output_format,)
    try:
        written = write_reports(record, path.parent, formats)
    except OSError as error:
        raise click.ClickException(f"cannot write the reports beside {path}: {error}")
    for report_path in written:
        click.echo(report_path)


main.add_command(snapshots.snapshots)
main.add_command(triggers.watch)
main.add_command(triggers.triggers)
main.add_command(rehearsal.rehearse)

