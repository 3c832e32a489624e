"""
Back up and restore a volume set: the named volumes of services that keep one data set
between them (Milvus standalone + etcd + MinIO), stopped and handled together so that
the copy is consistent across them.

Every operation here takes the set the same way:

+ stack: the ``facts.compose.Stack`` the services run in
+ services: the compose services of the set, e.g. ``["milvus-standalone", "milvus-etcd",
  "milvus-minio"]``; all of their named volumes belong to the set
+ timeout: seconds to wait for the services to run and be healthy once started again
  (for each round: a service another one of the set depends on starts, and is ready,
  first)

Archives are tar streams of each volume's directory on the host (owners, modes and
links kept), compressed with zstd where the host has it, else gzip. A restore extracts
beside the live directory, checks the extracted tree against the snapshot's
fingerprint and only then swaps directories, keeping the replaced data as
``<volume path>.pre-restore`` until the next restore. Needs GNU tar and findutils, and
root on the host (the data is Docker's).
"""

from __future__ import annotations

import json
import posixpath

from pyinfra import host, logger
from pyinfra.api import OperationError, QuoteString, StringCommand

from facts.compose import Stack, compose_command, valid_service
from facts.lock import holding_work
from facts.shell import COMPRESSORS, assign, decompressor
from facts.snapshots import checksum_checked, valid_part_name
from facts.volumes import (
    RESTORED_MARKER,
    MilvusCollections,
    VolumeSet,
    fingerprint_text,
    library,
    same_rows,
    services_args,
    set_match,
    volume_problems,
)
from operations.arguments import checked_path
from operations.decorator import operation

STOP_TIMEOUT = 60  # seconds `docker compose stop` grants each service to shut down cleanly

# Put every swapped volume back: the data a restore replaced returns, the restored goes.
REVERT = r"""
revert() {
  local path
  for path in "${swapped[@]}"; do
    if [ -d "$path.pre-restore" ]; then rm -rf "$path" && mv "$path.pre-restore" "$path"; fi
  done
  swapped=()
}
"""


def marker(path: str, archive_sha256, archived) -> StringCommand:
    """Shell that records, beside the volume, that it is at the archive (whose data had the
    fingerprint ``archived``) as its services left it (``facts.volumes.RESTORED_MARKER``)."""
    return StringCommand(
        assign(path=path), "printf '{\"archive_sha256\": \"%s\", \"archived\": %s, \"settled\": %s}\\n'",
        archive_sha256, archived, f'"$(fingerprint "$path")" > "$path{RESTORED_MARKER}";',
    )


def check_set(stack, services, timeout) -> Stack:
    if isinstance(services, str) or not isinstance(services, (list, tuple)) or not services:
        raise OperationError(f"services must be a non-empty list of compose services, got {services!r}")
    bad = [s for s in services if not valid_service(s)]
    if bad:
        raise OperationError(f"service {bad[0]!r} is not a compose service name")
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise OperationError(f"timeout must be a whole number of seconds, got {timeout!r}")
    return Stack.of(stack)


def usable_set(stack: Stack, services: list[str], fingerprint: bool = True) -> dict:
    """The set as VolumeSet sees it; refused when its volumes cannot be handled here."""
    volume_set = host.get_fact(VolumeSet, stack=stack, services=list(services), fingerprint=fingerprint)
    problems = volume_problems(volume_set)
    if not volume_set["volumes"] and not problems:
        problems.append(f"services {', '.join(services)} have no named volume")
    if problems:
        raise OperationError("; ".join(problems))
    return volume_set


def stop_start(stack: Stack, timeout: int) -> StringCommand:
    """Shell: ``stop_set`` stops the set's services together; ``start_set`` starts them
    again (all of them, or those named), a dependency first, each ready before what
    depends on it starts (``start_ready``: not held to Docker's first healthcheck); where
    the containers do not say what they depend on, ``docker compose start`` orders them."""
    return StringCommand(
        "stop_set() {", compose_command(stack, "stop", "--timeout", str(STOP_TIMEOUT), '"$@"'), "; };",
        f'start_set() {{ [ "$#" -eq 0 ] && return 0; start_ready {timeout} "$@"; case $? in 0) ;;',
        "2)", compose_command(stack, "start", '"$@"'), f'&& wait_ready {timeout} "$@" ;; *) return 1 ;; esac; }};',
    )


@operation()
def displaced_archived(stack: Stack, services: list[str], directory: str, part: str, timeout: int = 180):
    """
    Archive what a restore of the set displaced (``<path>.pre-restore`` of each volume) into
    a snapshot, as the set's part: a rollback's safety snapshot, after its window.

    + stack, services, timeout: the set (see the module docstring)
    + directory: the (partial) snapshot directory on the host
    + part: the base name of the files written there, e.g. ``milvus``

    Writes what ``dumped`` writes, from the displaced copies, with the services running:
    nothing uses those directories any more. Nothing happens where no volume of the set
    has a displaced copy; a set only some of whose volumes have one fails, naming them.

    **Example:**

    .. code:: python

        volumes.displaced_archived(
            name="Keep the displaced Milvus volumes",
            stack=Stack("/srv/layra"),
            services=["milvus-standalone", "milvus-etcd"],
            directory="/var/backups/layra/20261207T101009Z-safety-before-rollback.partial",
            part="milvus",
        )
    """
    stack = check_set(stack, services, timeout)
    checked_path(directory, "directory")
    if not valid_part_name(part):
        raise OperationError(f"part name {part!r} is not a plain file name")
    volume_set = usable_set(stack, services, fingerprint=False)
    names = sorted(volume_set["volumes"])
    present = [StringCommand(assign(path=volume_set["volumes"][name]["path"]),
                             '[ -d "$path.pre-restore" ] && found+=(', QuoteString(name), ")", "|| missing+=(",
                             QuoteString(name), ");") for name in names]
    archive, printf_args = archiving(services, volume_set, directory, part, {"displaced": True},
                                     suffix=".pre-restore")
    yield StringCommand(
        library(stack), 'fail() { echo "volume safety copy: $*" >&2; exit 1; };', "found=(); missing=();",
        *present,
        'if [ ${#found[@]} -eq 0 ]; then echo "no displaced copy of', QuoteString(", ".join(names)), 'to keep"; exit 0; fi;',
        '[ ${#missing[@]} -eq 0 ] || fail "displaced copies of ${found[*]} but not of ${missing[*]}";',
        assign(json_out=f"{directory}/{part}.json"), *archive,
        "{ umask 077; printf '%s'", *printf_args, '> "$json_out.tmp" && mv "$json_out.tmp" "$json_out"; }',
        '|| fail "could not write the part descriptor";',
        _shell_executable="bash",
    )


@operation()
def aside_dropped(stack: Stack, services: list[str], timeout: int = 180):
    """
    Remove what a restore of the set displaced (``<path>.pre-restore``), once a snapshot holds it.

    + stack, services, timeout: the set (see the module docstring)

    **Example:**

    .. code:: python

        volumes.aside_dropped(name="Drop the displaced Milvus volumes", stack=Stack("/srv/layra"),
                              services=["milvus-standalone", "milvus-etcd"])
    """
    stack = check_set(stack, services, timeout)
    volume_set = usable_set(stack, services, fingerprint=False)
    yield StringCommand("rm -rf", *(QuoteString(volume_set["volumes"][name]["path"] + ".pre-restore")
                                    for name in sorted(volume_set["volumes"])))


def in_use_check(volume: str) -> StringCommand:
    """Fails when a running container (outside the stopped set) still uses the volume."""
    return StringCommand(
        assign(v=volume), 'users=$(docker ps -q --filter "volume=$v");',
        '[ -z "$users" ] || fail "volume $v is in use by running container(s) $users outside the set";',
    )


def archiving(services: list[str], volume_set: dict, directory: str, part: str, extra: dict,
              checks: list | None = None, suffix: str = "") -> tuple[list, list]:
    """(the shell that archives each volume of the set, from ``<path><suffix>``, into the
    snapshot directory as ``<part>.<volume>.tar.<zst|gz>``, its fingerprint in ``$fpN``;
    the ``printf`` arguments that write the part's descriptor with those fingerprints)."""
    compression = "zstd" if volume_set["zstd"] else "gzip"
    extension, compress, _ = COMPRESSORS[compression]
    descriptor = {**extra, "component": part.split(".")[0], "engine": "volumes",
                  "services": list(services), "volumes": {}, "tool_versions": {"compression": compression}}
    archive = []
    for index, (name, volume) in enumerate(sorted(volume_set["volumes"].items())):
        file = f"{part}.{name}.tar{extension}"
        descriptor["volumes"][name] = {"file": file, "target": volume["target"], "fingerprint": f"@{index}@"}
        archive.append(StringCommand(
            assign(v=name, path=volume["path"] + suffix, out=posixpath.join(directory, file)),
            *([checks[index]] if checks else []),
            f'fp{index}=$(fingerprint "$path") || fail "could not read volume $v";',
            'tar -C "$path" --numeric-owner -cpf - . | ( umask 077;', compress, '> "$out.tmp" )',
            '&& mv "$out.tmp" "$out" || { rm -f "$out.tmp"; fail "archiving volume $v failed"; };',
        ))
    # The descriptor's text around each fingerprint, which only the shell can give.
    chunks = json.dumps(descriptor, indent=2, sort_keys=True).split('"@')
    printf_args = [QuoteString(chunks[0])]
    for chunk in chunks[1:]:
        index, rest = chunk.split('@"', 1)
        printf_args += [f'"$fp{index}"', QuoteString(rest)]
    return archive, printf_args


@operation(is_idempotent=False)
def dumped(stack: Stack, services: list[str], directory: str, part: str, timeout: int = 180,
           extra: dict | None = None):
    """
    Archive every named volume of a set of services into a snapshot, consistently: the
    services stop together, each volume is archived, and they start again.

    + stack, services, timeout: the set (see the module docstring)
    + directory: the (partial) snapshot directory on the host
    + part: the base name of the files written there, e.g. ``milvus``
    + extra: more to keep in the descriptor, e.g. ``{"milvus_collections": {"kb_chunks": 200}}``

    Writes ``<part>.<volume>.tar.zst`` (or ``.tar.gz``) per volume and the descriptor
    ``<part>.json`` with each volume's fingerprint, taken while the services were
    stopped, so it describes the archive exactly:

    .. code:: python

        {"component": "milvus", "engine": "volumes", "services": ["milvus-standalone", "milvus-etcd"],
         "volumes": {"layra_milvus_data": {"file": "milvus.layra_milvus_data.tar.zst",
                                           "target": "/var/lib/milvus",
                                           "fingerprint": {"bytes": 41752, "files": 6, "sha256": "0d39..."}}},
         "tool_versions": {"compression": "zstd"}}

    Services that were running are started again whatever happens, and must become
    ready within ``timeout``; a failure leaves no archive under its final name (the
    backup deploy then removes the partial snapshot). Services that were stopped stay
    stopped.

    **Example:**

    .. code:: python

        volumes.dumped(
            name="Archive the Milvus volumes",
            stack=Stack("/srv/layra"),
            services=["milvus-standalone", "milvus-etcd", "milvus-minio"],
            directory="/var/backups/layra/20261121T130000Z-pre-migration.partial",
            part="milvus",
        )
    """
    stack = check_set(stack, services, timeout)
    checked_path(directory, "directory")
    if not valid_part_name(part):
        raise OperationError(f"part name {part!r} is not a plain file name")
    volume_set = usable_set(stack, services, fingerprint=False)
    compression = "zstd" if volume_set["zstd"] else "gzip"
    extension = COMPRESSORS[compression][0]

    if extra is not None and not isinstance(extra, dict):
        raise OperationError(f"extra must be a mapping, got {extra!r}")
    archive, printf_args = archiving(services, volume_set, directory, part, extra or {},
                                     [in_use_check(name) for name in sorted(volume_set["volumes"])])
    markers = [marker(volume["path"], StringCommand(
        '"$(sha256sum <', QuoteString(posixpath.join(directory, f"{part}.{name}.tar{extension}")),
        "| cut -d' ' -f1)\""), f'"$fp{index}"')
        for index, (name, volume) in enumerate(sorted(volume_set["volumes"].items()))]

    logger.info(f"{host.print_prefix}volumes {', '.join(services)}: stopping to archive "
                f"{', '.join(sorted(volume_set['volumes']))} ({compression})")
    yield StringCommand(
        holding_work(stack.dir, f"volumes {', '.join(services)}: stopped and archived"),
        library(stack), services_args(services), stop_start(stack, timeout), assign(json_out=f"{directory}/{part}.json"),
        'fail() { echo "volume backup: $*" >&2; exit 1; };',
        'was_running=$(running "$@");',
        # whatever happens from here, the services that ran run again
        "trap 'rc=$?; start_set $was_running || { echo \"volume backup: services did not come back: $was_running\" >&2; rc=1; };"
        " exit $rc' EXIT;",
        'stop_set "$@" || fail "could not stop $*";',
        *archive,
        "{ umask 077; printf '%s'", *printf_args, '> "$json_out.tmp" && mv "$json_out.tmp" "$json_out"; }',
        '|| fail "could not write the part descriptor";',
        # Started again, the services change their data (etcd writes a raft entry): mark
        # each volume as being at this archive as they left it, so that a rollback to the
        # snapshot just taken finds nothing to do.
        "trap - EXIT;", 'start_set $was_running || fail "services did not come back: $was_running";',
        # (only when the whole set ran: a set left stopped has not moved from the archive)
        '[ "$was_running" != "$(printf \'%s \' "$@")" ] || {', *markers, "};",
        _shell_executable="bash",
    )


def snapshot_volumes_checked(volumes, volume_set: dict, services: list[str]) -> dict:
    """The set's live volumes (``VolumeSet``'s), once every volume the snapshot names is one
    of them; refuses (OperationError) otherwise."""
    if not isinstance(volumes, dict) or not volumes:
        raise OperationError(f"volumes must map volume names to their snapshot files, got {volumes!r}")
    live = volume_set["volumes"]
    missing = sorted(set(volumes) - set(live))
    if missing:
        raise OperationError(f"volume(s) {', '.join(missing)} of the snapshot are not volumes of "
                             f"{', '.join(services)} on this host")
    return live


def extraction(name: str, path: str, want: dict) -> StringCommand:
    """Shell that extracts the volume's archive into ``<path>.layra-restore``, beside the
    volume on its filesystem, and checks it against the snapshot's fingerprint."""
    return StringCommand(
        assign(v=name, path=path, file=want["file"], want=fingerprint_text(want["fingerprint"])),
        'rm -rf "$path.layra-restore" && mkdir "$path.layra-restore" &&', decompressor(want["file"]), '"$file" |',
        'tar -C "$path.layra-restore" --numeric-owner -xpf - || fail "$file did not extract";',
        '[ "$(fingerprint "$path.layra-restore")" = "$want" ]',
        '|| fail "volume $v: the extracted archive does not match the snapshot\'s fingerprint";',
    )


def archive_checks(volumes: dict) -> list:
    checks = []
    for name, want in sorted(volumes.items()):
        try:
            checks.append(checksum_checked(want["file"], want["sha256"], f"volume {name}"))
        except (KeyError, ValueError) as error:
            raise OperationError(f"volume {name}: {error}") from None
    return checks


@operation()
def staged(stack: Stack, services: list[str], volumes: dict, timeout: int = 180):
    """
    Extract a snapshot's archives beside the volumes of a set, while its services run: a
    rollback stages them before its window, so that the window only swaps directories.

    + stack, services, timeout: the set (see the module docstring)
    + volumes: per volume name, from the snapshot, as ``restored`` takes them

    Every archive's checksum is checked, each is extracted into ``<path>.layra-restore``
    (on the volume's filesystem: the swap is a rename) and checked against the snapshot's
    fingerprint; a copy already staged and matching is left as it is. Nothing live is
    touched. ``restored`` with ``staged`` then swaps these in.

    **Example:**

    .. code:: python

        volumes.staged(
            name="Stage the Milvus volumes",
            stack=Stack("/srv/layra"),
            services=["milvus-standalone", "milvus-etcd"],
            volumes={"layra_milvus_data": {
                "file": "/var/backups/layra/20261121T130000Z-pre-migration/milvus.layra_milvus_data.tar.zst",
                "sha256": "5f1c...",
                "fingerprint": {"bytes": 41752, "files": 6, "sha256": "0d39..."},
            }},
        )
    """
    stack = check_set(stack, services, timeout)
    live = snapshot_volumes_checked(volumes, usable_set(stack, services, fingerprint=False), services)
    yield from archive_checks(volumes)
    yield StringCommand(
        holding_work(stack.dir, f"volumes {', '.join(services)}: stage the snapshot beside them"),
        library(stack), 'fail() { echo "volume staging: $*" >&2; exit 1; };',
        *(StringCommand(
            assign(path=live[name]["path"], want=fingerprint_text(want["fingerprint"])),
            '[ -d "$path.layra-restore" ] && [ "$(fingerprint "$path.layra-restore")" = "$want" ] ||',
            "{", extraction(name, live[name]["path"], want), "};",
        ) for name, want in sorted(volumes.items())),
        _shell_executable="bash",
    )


@operation()
def restored(stack: Stack, services: list[str], volumes: dict, timeout: int = 180, milvus: dict | None = None,
             staged: bool = False):
    """
    Put a volume set back to a snapshot's archives: nothing happens when every volume's
    fingerprint already equals the snapshot's.

    + stack, services, timeout: the set (see the module docstring)
    + volumes: per volume name, from the snapshot: ``{"file": <archive path on the host>,
      "sha256": <its checksum from the manifest>, "fingerprint": <the volume's fingerprint>}``
    + milvus: where the set is Milvus, how to ask it and the snapshot's row counts,
      ``{"client_service", "uri", "rows": {collection: rows}}``: Milvus writes its volumes as
      long as it runs, so they never settle at a fingerprint; a set whose volumes were last
      restored from (or archived at) the snapshot and whose Milvus serves its rows is at the
      snapshot too (``facts.volumes.set_match``)
    + staged: this run staged the archives beside the volumes (``staged``), checked, under
      its lock: only the swap is left (stop, rename, start)

    Every archive's checksum is checked before anything stops. When any volume differs,
    the whole set is restored: the services stop together; each volume is extracted
    beside its live directory and its fingerprint checked against the snapshot's; only
    when all are good are the
    directories swapped (the replaced data stays as ``<path>.pre-restore``), and the
    services start and must become ready within ``timeout``. If they do not, the
    previous data is put back and started again, and the operation fails; a failure
    before the swap leaves the live volumes untouched.

    **Example:**

    .. code:: python

        volumes.restored(
            name="Restore the Milvus volumes",
            stack=Stack("/srv/layra"),
            services=["milvus-standalone", "milvus-etcd", "milvus-minio"],
            volumes={"layra_milvus_data": {
                "file": "/var/backups/layra/20261121T130000Z-pre-migration/milvus.layra_milvus_data.tar.zst",
                "sha256": "5f1c...",
                "fingerprint": {"bytes": 41752, "files": 6, "sha256": "0d39..."},
            }},
        )
    """
    stack = check_set(stack, services, timeout)
    live = snapshot_volumes_checked(volumes, usable_set(stack, services), services)
    wanted = {name: (want.get("fingerprint"), want.get("sha256")) for name, want in volumes.items()}
    how = set_match(live, wanted)
    if not all(how.values()) and milvus:
        counts = host.get_fact(MilvusCollections, stack=stack, client_service=milvus.get("client_service", "backend"),
                               uri=milvus.get("uri", "http://milvus-standalone:19530"))
        how = set_match(live, wanted, same_rows(counts, milvus.get("rows")))
    if all(how.values()):
        host.noop(f"volumes {', '.join(sorted(volumes))} already match the snapshot"
                  + (" (restored from it; Milvus serves its rows)" if "served" in how.values() else ""))
        return
    # All of them, not just those that differ: the set's services stop and start together,
    # and a service writes its volume as it starts (etcd appends to its WAL), so a volume
    # left out would come back changed, and out of step with the others.
    differing = sorted(volumes)

    checks = [] if staged else archive_checks({name: volumes[name] for name in differing})
    present, extracts, swaps, markers = [], [], [], []
    for name in differing:
        want = volumes[name]
        path = live[name]["path"]
        if staged:
            present.append(StringCommand(assign(v=name, path=path), '[ -d "$path.layra-restore" ]',
                                         '|| fail "volume $v: no staged copy at $path.layra-restore";'))
        # once the set is stopped: nothing else may hold the volume
        extracts.append(in_use_check(name) if staged else StringCommand(in_use_check(name), extraction(name, path, want)))
        swaps.append(StringCommand(
            assign(path=path), f'rm -f "$path{RESTORED_MARKER}" && rm -rf "$path.pre-restore" && mv "$path" "$path.pre-restore"',
            '&& swapped+=("$path") && mv "$path.layra-restore" "$path" || fail "swapping $path failed";',
        ))
        markers.append(marker(path, QuoteString(want["sha256"]), QuoteString(fingerprint_text(want["fingerprint"]))))
        logger.info(f"{host.print_prefix}volume {name}: {live[name]['fingerprint'].get('files')} -> "
                    f"{want['fingerprint'].get('files')} files (restoring {posixpath.basename(want['file'])})")

    yield from checks
    yield StringCommand(
        holding_work(stack.dir, f"volumes {', '.join(services)}: stopped and restored"),
        library(stack), services_args(services), stop_start(stack, timeout), REVERT,
        "swapped=(); staged=(", *(QuoteString(live[name]["path"] + ".layra-restore") for name in differing), ");",
        'fail() { echo "volume restore: $*" >&2; exit 1; };',
        # A failure before the swap leaves live data as it was; after it, the previous
        # data comes back. Either way the set is started again.
        "trap 'rc=$?; if [ $rc -ne 0 ]; then rm -rf \"${staged[@]}\"; if [ ${#swapped[@]} -gt 0 ]; then stop_set \"$@\"; revert;"
        " echo \"volume restore: the previous data is back in place\" >&2; fi; start_set \"$@\"; fi; exit $rc' EXIT;",
        # staged before the window, the staged copies are only checked to be there
        *present,
        'stop_set "$@" || fail "could not stop $*; nothing was changed";',
        *extracts, *swaps,
        'start_set "$@" || fail "$* did not become ready on the restored data";',
        *markers,
        'rm -rf "${staged[@]}";',
        _shell_executable="bash",
    )
