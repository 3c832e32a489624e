"""
MySQL (8.4, 9.x) and MariaDB: one part per database (``<component>.<database>``), a compressed
``mysqldump --single-transaction`` each (``operations.mysql.dumped``). A restore loads the
dump into the shadow database ``<database>__restore`` and swaps every table in with one
``RENAME TABLE`` once the copy matches the snapshot's fingerprint
(``operations.mysql.shadow_loaded``, ``swapped_in``). The fingerprint (``facts.mysql``) is a
schema hash with one short hash per column, index, view, routine, trigger and event, and
per table its row count and ``CHECKSUM TABLE``. Where the two servers differ (the dump
tool's GTID option, MySQL's cached table sizes), ``facts.MysqlVersions`` says which it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra import host

from facts import mysql as facts
from operations import mysql as operations
from operations.checks import Check, Probe
from operations.parallel import Step

from ..compose_file import env_of, password_from
from . import mysql_point as point
from .base import (
    PASSWORD_KEY_RULE,
    SERVICE_RULE,
    Component,
    one_line,
    password_key,
    service_name,
    setting,
)
from .shadow import (
    DATABASES,
    DATABASES_KEY,
    FROM_ENV,
    USER_KEY,
    ShadowDatabases,
    databases_from,
)


@dataclass(frozen=True)
class MysqlComponent(Component):
    """``{engine: mysql, service, user, password_key, databases, user_key, databases_key}``"""

    engine = "mysql"
    service: str = setting(SERVICE_RULE, service_name, "mysql")
    user: str = setting("be a name on one line", one_line, "root")
    password_key: str | None = setting(PASSWORD_KEY_RULE, password_key, facts.PASSWORD_KEY)
    databases: tuple[str, ...] = DATABASES
    user_key: str | None = USER_KEY
    databases_key: str | None = DATABASES_KEY
    from_env = FROM_ENV

    @property
    def client(self) -> dict:
        """The connection arguments its facts and operations take."""
        return {"service": self.service, "user": self.user, "password_key": self.password_key}


class Mysql(ShadowDatabases):
    name, component, layra_name = "mysql", MysqlComponent, "mysql"
    images = ("mysql", "mysql-server", "mariadb", "percona", "percona-server")
    operations, fingerprint_fact, file_argument = operations, facts.MysqlFingerprint, "dump_file"
    ping_fact, ping_answer = facts.MysqlPing, "mysqld is alive"
    data_target = "/var/lib/mysql"

    def matches(self, live, snapshot) -> bool:
        return facts.same_data(live, snapshot)

    def release_point_saved(self, stack, component, **options) -> list:
        return [operations.binlog_point_saved(name=f"Save {component.name}'s binlog point before the release",
                                              stack=stack, path=point.release_point_path(stack, component),
                                              **component.client, **options)]

    def point_in_time(self, stack, component, descriptor: dict, until: dict, snapshot_dir: str,
                      created: str | None, differs: bool) -> dict:
        plan = point.plan(stack, component, descriptor, until, snapshot_dir, created)
        if "error" not in plan:
            plan["at_target"] = point.at_target(stack, component, descriptor, plan["label"],
                                                lambda: self.live(stack, component, descriptor["database"]))
        return plan

    def stage(self, stack, component, descriptor: dict, files: dict, sha256s: dict,
              differs: bool = False) -> list[Step]:
        steps = super().stage(stack, component, descriptor, files, sha256s, differs)
        replay = descriptor.get("point_in_time")
        if steps and replay:
            # the checked snapshot copy, then the writes after it up to the point
            database = descriptor["database"]
            steps += [Step(operations.shadow_replayed, {"stack": stack, "database": database,
                                                        "replay": replay["replay"], **component.client},
                           f"{component.name}/{database}"),
                      Step(operations.replay_target_saved,
                           {"stack": stack, "database": database, "label": replay["label"],
                            "path": point.target_path(stack, component, database), **component.client},
                           f"{component.name}/{database}")]
        return steps

    def target(self, stack, component, descriptor: dict) -> dict:
        # a point-in-time rollback's target is what it replayed to, saved when it did
        if not descriptor.get("point_in_time"):
            return descriptor["fingerprint"]
        saved = host.get_fact(facts.ReplayTarget, path=point.target_path(stack, component, descriptor["database"]))
        return saved["fingerprint"] if saved else {"exists": False}

    def keep_displaced(self, stack, component, name: str, descriptor: dict, directory: str, **options) -> list:
        kept = super().keep_displaced(stack, component, name, descriptor, directory, **options)
        replay = descriptor.get("point_in_time")
        if replay and replay["displaced"]["tables"]:
            kept.append(operations.binlog_exported(
                name=f"Export the writes after the point on {component.name}/{descriptor['database']}",
                stack=stack, database=descriptor["database"], replay=replay["after"],
                path=f"{directory}/{name}.after-point.sql",
                until_path=point.window_point_path(stack, component), **component.client, **options))
        return kept

    def restore(self, stack, component, descriptor: dict, files: dict, sha256s: dict,
                differs: bool = False) -> list[Step]:
        steps = super().restore(stack, component, descriptor, files, sha256s, differs)
        if descriptor.get("point_in_time"):
            # writes are stopped: where the binlog is now ends the export of what was not replayed
            steps.insert(0, Step(operations.binlog_point_saved, {"stack": stack,
                                                                 "path": point.window_point_path(stack, component),
                                                                 **component.client},
                                 f"{component.name}/{descriptor['database']}"))
        return steps

    def integrity(self, stack, component, descriptor: dict, sha256s: dict) -> Probe:
        full = super().integrity(stack, component, descriptor, sha256s)
        database, want = descriptor["database"], descriptor["fingerprint"]

        def read(services: dict) -> Check:
            # the copy this run checked before its window and swapped in: its stamps tell it
            # without reading the data again (a replayed copy was written after its check)
            checked = operations.CHECKED_COPIES.get((host.name, component.service, database))
            if checked and not descriptor.get("point_in_time"):
                live = host.get_fact(facts.MysqlTableStamps, stack=stack, database=database,
                                     flavor=checked["flavor"], **component.client)
                if facts.unchanged_since_checked(checked, live) and facts.same_schema(live, want):
                    return Check(4, f"{component.name}/{database} fingerprint",
                                 f"{self.summary(want)}: the copy checked at {checked['now']}, unwritten since",
                                 f"the snapshot's: {self.summary(want)}", True)
            return full.read(services)
        return Probe(read)

    def holds_data(self, fingerprint: dict) -> bool:
        # the swap creates <database>__pre_restore, then moves the tables in: killed between
        # the two, it leaves the database empty
        return bool(fingerprint.get("exists")) and any(fingerprint.get(key) for key in
                                                       ("tables", "views", "routines", "triggers"))

    def summary(self, fingerprint: dict) -> str:
        return facts.summary(fingerprint)

    def estimate(self, stack, component, part: dict) -> int:
        # MySQL answers sizes from a day-old cache unless told not to, which MariaDB refuses
        flavor = host.get_fact(facts.MysqlVersions, stack=stack, **component.client)["flavor"]
        return host.get_fact(facts.MysqlDatabaseSize, stack=stack, database=part["database"], flavor=flavor,
                             **component.client)

    def plan(self, stack, component, part: str, descriptor: dict, sha256s: dict) -> dict:
        live = self.live(stack, component, descriptor["database"])
        return {"part": part, **database_plan(component.name, descriptor["database"], live, descriptor["fingerprint"])}

    def describe(self, plan: dict) -> list[str]:
        replay = plan.get("point_in_time") or {}
        if replay.get("at_target"):
            return [f"{plan['component']}: no change: already the snapshot replayed {replay['point']}"]
        lines = self.describe_changes(plan, "tables", "row")
        if not plan["changes"]:
            return lines
        if replay and "error" not in replay:
            lines += point.describe(replay)
        lines += [f"  table {table} added" for table in plan["tables_added"]]
        lines += [f"  table {table} dropped (kept in the __pre_restore database)" for table in plan["tables_dropped"]]
        schema = plan.get("schema")
        if schema:
            lines += [f"  {name} added" for name in schema["added"]]
            lines += [f"  {name} dropped" for name in schema["dropped"]]
            lines += [f"  {name} altered (back to the snapshot's definition)" for name in schema["altered"]]
        if not plan["schema_changed"]:
            lines.append("  schema unchanged")
        elif schema is None:
            lines.append("  schema changed (the snapshot predates per-object fingerprints: which objects, not known)")
        return lines

    def propose(self, service, settings: dict, why: list[str], todo: list[str]):
        settings["user"] = "root"  # whose password MYSQL_ROOT_PASSWORD is
        password_from(service, env_of(service, "MYSQL_ROOT_PASSWORD", "MARIADB_ROOT_PASSWORD"), settings, why, todo)
        databases_from(service, ("MYSQL_DATABASE", "MARIADB_DATABASE"), settings, why, todo)


def database_plan(name: str, database: str, live: dict, snapshot: dict) -> dict:
    """Restoring one database: per-table rows current -> snapshot, tables added/dropped, and
    which schema objects the restore adds, drops or alters."""
    live_tables = live.get("tables", {}) if live.get("exists") else {}
    snap_tables = snapshot.get("tables", {})
    tables = {
        table: [live_tables.get(table, {}).get("rows"), snap_tables.get(table, {}).get("rows")]
        for table in sorted(set(live_tables) | set(snap_tables))
    }
    changed_rows = {
        table: counts for table, counts in tables.items()
        if table in live_tables and table in snap_tables
        and (counts[0] != counts[1] or live_tables[table].get("checksum") != snap_tables[table].get("checksum"))
    }
    added, dropped = sorted(set(snap_tables) - set(live_tables)), sorted(set(live_tables) - set(snap_tables))
    return {
        "component": f"{name}/{database}",
        "engine": "mysql",
        "exists": bool(live.get("exists")),
        "tables_changed": changed_rows,
        "tables_added": added,      # the restore brings them back
        "tables_dropped": dropped,  # the restore moves them aside
        "schema_changed": live.get("schema_sha256") != snapshot.get("schema_sha256"),
        "schema": schema_objects_changed(live, snapshot, set(added) | set(dropped)),
        "changes": not facts.same_data(live, snapshot),
    }


def schema_objects_changed(live: dict, snapshot: dict, whole_tables: set[str]) -> dict | None:
    """The columns, indexes, views, routines, triggers and events a restore adds, drops or
    alters; a table added or dropped whole is named once, as a table, not by its columns."""
    changes = facts.schema_changes(live, snapshot) if live.get("exists") else None
    if changes is None:
        return None

    def own(name: str) -> bool:
        kind, _, rest = name.partition(" ")
        return not (kind in ("column", "index") and rest.rsplit(".", 1)[0] in whole_tables)

    return {what: [name for name in names if own(name)] for what, names in changes.items()}


ENGINE = Mysql()
