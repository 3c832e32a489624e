"""
A rollback's safety snapshot, ``<run>-safety-before-rollback``: what the rollback replaced,
kept so that ``rollback.py --data snapshot=<it>`` undoes it.

It is started before the maintenance window with the stack as it is (commit, files,
containers). The parts an engine swaps in leave the data they displaced aside
(``<database>__pre_restore``, ``<volume>.pre-restore``, Redis's ``.layra-displaced``);
after the window those copies are written into the snapshot (dumped or archived from the
aside copies: nothing of that is in the window),
the snapshot is completed and verified, and only then are the aside copies dropped. The
parts of an engine that restores in place (it displaces nothing) are dumped inside the
window, just before their restore replaces them. Writes that landed between the plan and
the window are in the displaced copies, so in the safety snapshot.

A run that died after a swap, before its safety snapshot was complete, left displaced
copies aside and its snapshot unfinished (``<id>.partial``). The next rollback on the host
finds them: it continues that snapshot (its stack state is the one saved before the dead
run's window), keeps those copies into it first, before any swap of its own could replace
them, and completes it; what the dead run dumped already is not dumped again. Where its own
swaps displace one of those parts again, that snapshot is completed before its window and
its own displaced copies go to its own safety snapshot: both are kept.
"""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import DeployError
from pyinfra.operations import python

from facts.capacity import DiskFree
from facts.snapshots import PartialSnapshot, SnapshotManifest, partial_dir
from operations import snapshots
from operations import stack as stack_ops

from .backup import HEADROOM_BYTES, stack_metadata
from .engines import engine_of
from .record import RUN
from .snapshot import SAFETY_LABEL


class SafetySnapshot:
    """The safety snapshot of one host's rollback: its steps, registered as the rollback
    reaches them (``started``, ``dumped_before_restore``, ``completed``)."""

    def __init__(self, stack, root: str, snapshot_id: str, parts: list[tuple], earlier: list[tuple] = ()):
        """``parts``: (component, part name, snapshot descriptor) of every part the rollback
        changes; ``earlier``: the same of the parts whose displaced copy an earlier run left
        aside. ``snapshot_id`` may name the unfinished snapshot of that run: it is continued.
        Refuses (DeployError) when the snapshot root lacks room for them, before anything runs."""
        self.stack, self.root, self.id, self.parts, self.earlier = stack, root, snapshot_id, parts, list(earlier)
        self.directory = partial_dir(root, snapshot_id)
        self.steps: list = []
        self.done = host.get_fact(SnapshotManifest, root=root, snapshot_id=snapshot_id) is not None
        unfinished = None if self.done else host.get_fact(PartialSnapshot, root=root, snapshot_id=snapshot_id)
        self.continued = unfinished is not None
        # what the dead run wrote before its restores replaced the data: not dumped again
        self.written = set(unfinished["parts"]) if unfinished else set()
        # the stack as it is now, before the window moves it; a continued snapshot keeps the
        # one its first run saved (this run's stack may be the one that run moved)
        self.metadata = (unfinished or {}).get("metadata") or {
            "label": f"{SAFETY_LABEL}-before-rollback", "host": host.name, "stack": stack_metadata(stack)}
        self.stack_saved = bool((unfinished or {}).get("metadata"))
        self.room_checked()

    def room_checked(self):
        needed = HEADROOM_BYTES + 1024 * 1024 + sum(
            engine_of(component).estimate(self.stack, component, backup_part)
            for component, name, backup_part in self.backup_parts(self.parts + self.earlier))
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
        """Before the window: the directory, the stack as it is, and the displaced copies an
        earlier run left aside (this run's swaps would replace them)."""
        if self.done:
            return
        if self.continued:
            logger.warning(f"{host.print_prefix}continuing the safety snapshot {self.id} an earlier run left "
                           f"unfinished" + (f": keeping first the copies it displaced ("
                                            f"{', '.join(name for _, name, _ in self.earlier)})" if self.earlier else ""))
        else:
            self.steps.append(snapshots.started(name=f"Start snapshot {self.id}", root=self.root, snapshot_id=self.id))
        if not self.stack_saved:
            self.steps.append(stack_ops.state_saved(name="Save the stack's commit, files and containers",
                                                    stack=self.stack, directory=self.directory,
                                                    metadata=self.metadata, _ignore_errors=True))
        for component, name, descriptor in host.loop(self.earlier):
            self.steps += engine_of(component).keep_displaced(self.stack, component, name, descriptor,
                                                              self.directory, _ignore_errors=True)

    def dumped_before_restore(self, parts: list[tuple]):
        """Inside the window, before the restores: the parts whose engine displaces nothing
        (not those a dead run of this snapshot dumped before its restore)."""
        if self.done:
            return
        for component, name, backup_part in host.loop(self.backup_parts(parts)):
            if name not in self.written:
                self.steps += engine_of(component).dump(self.stack, component, name, backup_part, self.directory,
                                                        _ignore_errors=True)

    def completed(self, parts: list[tuple]):
        """After the window: the displaced copies of ``parts`` written in, the snapshot
        completed and verified, and only then the aside copies dropped. (None of ``parts``
        is one kept first from an earlier run: where this run swaps such a part again, the
        rollback completes that run's snapshot before its window and keeps its own in another.)"""
        if self.done:
            return
        for component, name, descriptor in host.loop(parts):
            self.steps += engine_of(component).keep_displaced(self.stack, component, name, descriptor,
                                                              self.directory, _ignore_errors=True)
        snapshots.completed(name=f"Complete snapshot {self.id}", root=self.root, snapshot_id=self.id,
                            metadata=self.metadata, _if=lambda: not self.failed())
        # not abandoned: what it holds may be the only copy of data restored in place
        python.call(name=f"Keep snapshot {self.id} unfinished where a part failed", function=self.unfinished,
                    _if=self.failed)
        verified = snapshots.verified(name=f"Verify snapshot {self.id}", root=self.root, snapshot_id=self.id,
                                      pending=True)
        every = list({name: (component, name, descriptor)
                      for component, name, descriptor in self.earlier + list(parts)}.values())
        python.call(name="Count the writes the displaced copies hold", function=self.counted, parts=every,
                    _if=lambda: verified.did_succeed() and not self.failed())
        for component, name, descriptor in host.loop(every):
            engine_of(component).aside_dropped(self.stack, component, descriptor,
                                               _if=lambda: verified.did_succeed() and not self.failed())

    def unfinished(self):
        raise DeployError(f"safety snapshot {self.id} is not complete: what was written stays in {self.directory}, "
                          f"the displaced copies stay aside (<database>__pre_restore, <volume>.pre-restore, "
                          f"Redis's <dir>/.layra-displaced); "
                          f"the next rollback on this host continues it")

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
    MongoDB's collections with their document counts, Redis's databases with their keys:
    ``db2``)."""
    found = {}
    for key, count, prefix in (("tables", "rows", ""), ("collections", "count", ""), ("databases", "dbsize", "db")):
        aside, back = displaced.get(key) or {}, restored.get(key) or {}
        for item in sorted(set(aside) | set(back)):
            pair = [(aside.get(item) or {}).get(count, 0), (back.get(item) or {}).get(count, 0)]
            if pair[0] != pair[1]:
                found[prefix + item] = pair
    return found
