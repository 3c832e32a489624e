"""
`layra-rollback`: the operator's commands around the pyinfra deploys.

The deploys themselves run through pyinfra (`pyinfra INVENTORY rollback.py ...`);
this CLI reads what they leave behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .catalog import snapshots
from .plan import describe


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="layra-rollback")
def main():
    """Back up, roll back and verify a Layra Docker Compose stack, with pyinfra.

    \b
    Run the deploys with pyinfra against an inventory:
      pyinfra inventories/prod.py rollback.py --data commit=v1.0.0 --dry
      pyinfra inventories/prod.py rollback.py --data commit=v1.0.0
      pyinfra inventories/prod.py verify.py
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


main.add_command(snapshots)
