"""
A rollback's safety snapshot, ``<run>-safety-before-rollback``: what the rollback replaced,
kept so that ``rollback.py --data snapshot=<it>`` undoes it.

It is started before the maintenance window with the stack as it is (commit, files,
containers). The parts an engine swaps in leave the data they displaced aside
(``<database>__pre_restore``); after the window those copies are written into the
snapshot (dumped or archived from the aside copies: nothing of that is in the window),
the snapshot is completed and verified, and only then are the aside copies dropped. The
parts of an engine that restores in place (it displaces nothing) are dumped inside the
window, just before their restore replaces them. Writes that landed between the plan and
the window are in the displaced copies, so in the safety snapshot.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import DeployError
from pyinfra.operations import python

from facts.capacity import DiskFree
from facts.snapshots import SnapshotManifest, partial_dir
from operations import snapshots
from operations import stack as stack_ops

from .backup import HEADROOM_BYTES, stack_metadata
from .engines import engine_of
from .record import RUN
from .snapshot import SAFETY_LABEL


class SafetySnapshot:
    """The safety snapshot of one host's rollback: its steps, registered as the rollback
    reaches them (``started``, ``dumped_before_restore``, ``completed``)."""

    def __init__(self, stack, root: str, snapshot_id: str, parts: list[tuple]):
        """``parts``: (component, part name, snapshot descriptor) of every part the rollback
        changes. Refuses (DeployError) when the snapshot root lacks room for them, before
        anything runs."""
        self.stack, self.root, self.id, self.parts = stack, root, snapshot_id, parts
        self.directory = partial_dir(root, snapshot_id)
        self.steps: list = []
        self.done = host.get_fact(SnapshotManifest, root=root, snapshot_id=snapshot_id) is not None
        # the stack as it is now, before the window moves it
        self.metadata = {"label": f"{SAFETY_LABEL}-before-rollback", "host": host.name,
                         "stack": stack_metadata(stack)}
        self.room_checked()

    def room_checked(self):
        needed = HEADROOM_BYTES + 1024 * 1024 + sum(
            engine_of(component).estimate(self.stack, component, backup_part)
            for component, name, backup_part in self.backup_parts(self.parts))
        disk = host.get_fact(DiskFree, path=self.root)
        free = disk["free_kb"] * 1024
        if free < needed:
            raise DeployError(
                f"{host.name}: the rollback's safety snapshot needs about {needed / 2**20:.0f} MiB under {self.root}, "
                f"{free / 2**20:.0f} MiB are free on {disk['mount']}: {(needed - free) / 2**20:.0f} MiB missing "
                f"(or run with --data safety_snapshot=skip, and no undo)")

    def backup_parts(self, parts: list[tuple]) -> list[tuple]:
        """(component, part name, what its dump needs) for each of ``parts``."""
        found = []
        for component, name, _ in parts:
            backup = engine_of(component).parts(self.stack, component)
            if name in backup:
                found.append((component, name, backup[name]))
        return found

    def failed(self) -> bool:
        return any(step.did_error() for step in self.steps)

    def started(self):
        """Before the window: the directory, and the stack as it is."""
        if self.done:
            return
        self.steps.append(snapshots.started(name=f"Start snapshot {self.id}", root=self.root, snapshot_id=self.id))
        self.steps.append(stack_ops.state_saved(name="Save the stack's commit, files and containers",
                                                stack=self.stack, directory=self.directory, _ignore_errors=True))

    def dumped_before_restore(self, parts: list[tuple]):
        """Inside the window, before the restores: the parts whose engine displaces nothing."""
        if self.done:
            return
        for component, name, backup_part in self.backup_parts(parts):
            self.steps += engine_of(component).dump(self.stack, component, name, backup_part, self.directory,
                                                    _ignore_errors=True)

    def completed(self, parts: list[tuple]):
        """After the window: the displaced copies of ``parts`` written in, the snapshot
        completed and verified, and only then the aside copies dropped."""
        if self.done:
            return
        for component, name, descriptor in parts:
            self.steps += engine_of(component).keep_displaced(self.stack, component, name, descriptor,
                                                              self.directory, _ignore_errors=True)
        snapshots.completed(name=f"Complete snapshot {self.id}", root=self.root, snapshot_id=self.id,
                            metadata=self.metadata, _if=lambda: not self.failed())
        snapshots.abandoned(name=f"Keep snapshot {self.id} only if every part was written", root=self.root,
                            snapshot_id=self.id, _if=self.failed,
                            reason=f"safety snapshot {self.id} failed: no snapshot was kept; the displaced "
                                   f"copies are still aside (<database>__pre_restore, <volume>.pre-restore)")
        verified = snapshots.verified(name=f"Verify snapshot {self.id}", root=self.root, snapshot_id=self.id,
                                      pending=True)
        python.call(name="Count the writes the displaced copies hold", function=self.counted, parts=parts,
                    _if=lambda: verified.did_succeed() and not self.failed())
        for component, name, descriptor in parts:
            engine_of(component).aside_dropped(self.stack, component, descriptor,
                                               _if=lambda: verified.did_succeed() and not self.failed())

    def counted(self, parts: list[tuple]):
        """Into the run record: per table (collection) of each displaced part, its rows in
        the displaced copy against the restored data's, where they differ (writes the
        rollback moved aside: they are in the safety snapshot)."""
        manifest = host.get_fact(SnapshotManifest, root=self.root, snapshot_id=self.id) or {}
        kept = {}
        for component, name, descriptor in parts:
            displaced = ((manifest.get("parts") or {}).get(name) or {}).get("fingerprint") or {}
            differing = items_differing(displaced, descriptor.get("fingerprint") or {})
            if differing:
                kept[name] = differing
        RUN.note(host, displaced=kept)


def items_differing(displaced: dict, restored: dict) -> dict:
    """``{table: [rows displaced, rows restored]}`` where they differ (MySQL's tables,
    MongoDB's collections, with their document counts)."""
    found = {}
    for key, count in (("tables", "rows"), ("collections", "count")):
        aside, back = displaced.get(key) or {}, restored.get(key) or {}
        for item in sorted(set(aside) | set(back)):
            pair = [(aside.get(item) or {}).get(count, 0), (back.get(item) or {}).get(count, 0)]
            if pair[0] != pair[1]:
                found[item] = pair
    return found
