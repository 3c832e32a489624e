"""
Facts a rollback watcher polls every few seconds: the host-side metrics of a stack, all
in one round trip.
"""

from __future__ import annotations

import json
import re

from pyinfra.api import QuoteString, StringCommand

from .capacity import disk_free_command, parse_disk_free
from .compose import Stack, compose_command, valid_service
from .http import STATUS_MARKER, http_get_command, parse_http_response
from .shell import WholeOutputFact, absolute_path, assign, section, split_sections

KAFKA_KEYS = ("service", "group", "bootstrap", "command")
KAFKA_DEFAULTS = {"group": None, "bootstrap": "localhost:9092", "command": "kafka-consumer-groups.sh"}
BOOTSTRAP = re.compile(r"^[A-Za-z0-9._\[\]:-]+(,[A-Za-z0-9._\[\]:-]+)*\Z")
TOOL = re.compile(r"^[A-Za-z0-9._/-]+\Z")

# `limit SECONDS COMMAND...`: COMMAND, killed (with its children: timeout signals its whole
# process group) after SECONDS where coreutils' or busybox's timeout is there.
LIMIT = 'limit() { if command -v timeout >/dev/null 2>&1; then timeout "$@"; else shift; "$@"; fi; };'

# The memory of the project's running service containers (bash; set before it: project,
# timeout). Prints "service ID NAME" for each container, then one sample per container:
# "engine ID {memory_stats JSON}" from the Engine API (one-shot: about a second, as the daemon
# takes no second sample for CPU usage), asked on the socket the docker CLI itself uses;
# or, where that is not a local socket or gave nothing, "stats ID 12.34%" from `docker
# stats --no-stream` (every running container: one that stops meanwhile drops out instead
# of failing the call, as it does when named). Exits non-zero when docker ps fails.
MEMORY_SCRIPT = r"""
map=$(limit "$timeout" docker ps --no-trunc --filter "label=com.docker.compose.project=$project" \
  --filter label=com.docker.compose.oneoff=False --format '{{.ID}} {{.Label "com.docker.compose.service"}}') || exit
printf '%s\n' "$map" | sed -n 's/^./service &/p'
[ -n "$map" ] || exit 0
sock=$(docker context inspect --format '{{.Endpoints.docker.Host}}' 2>/dev/null)
fds=()
memory='"memory_stats":(\{[^{}]*(\{[^{}]*\}[^{}]*)?\})'
if [ "${sock#unix://}" != "$sock" ] && command -v curl >/dev/null 2>&1; then
  for id in $(printf '%s\n' "$map" | cut -d ' ' -f 1); do
    exec {fd}< <(body=$(curl -sf --max-time "$timeout" --unix-socket "${sock#unix://}" \
      "http://docker/containers/$id/stats?stream=false&one-shot=true") || exit
      [[ $body =~ $memory ]] && body=${BASH_REMATCH[1]}
      printf 'engine %s %s\n' "$id" "$body")
    fds+=("$fd")
  done
fi
got=
for fd in "${fds[@]}"; do
  out=$(cat <&"$fd"); exec {fd}<&-
  [ -z "$out" ] || { printf '%s\n' "$out"; got=yes; }
done
[ -n "$got" ] ||
  limit "$timeout" docker stats --no-stream --no-trunc --format '{{.ID}} {{.MemPerc}}' | sed 's/^/stats /'
"""


def kafka_spec(kafka: dict) -> dict:
    """The Kafka settings with their defaults filled in (all groups, ``localhost:9092``,
    ``kafka-consumer-groups.sh``), or a ValueError naming the key."""
    if not isinstance(kafka, dict):
        raise ValueError(f"kafka must be a mapping with {', '.join(KAFKA_KEYS)}, got {kafka!r}")
    for key in sorted(set(kafka) - set(KAFKA_KEYS)):
        raise ValueError(f"kafka.{key} is not a setting (settings: {', '.join(KAFKA_KEYS)})")
    spec = {**KAFKA_DEFAULTS, **{key: value for key, value in kafka.items() if value is not None}}
    if not valid_service(spec.get("service")):
        raise ValueError(f"kafka.service must name a compose service, got {spec.get('service')!r}")
    group = spec["group"]
    if group is not None and not (isinstance(group, str) and group and group.isprintable()):
        raise ValueError(f"kafka.group must be a consumer group on one line, got {group!r}")
    if not (isinstance(spec["bootstrap"], str) and BOOTSTRAP.match(spec["bootstrap"])):
        raise ValueError(f"kafka.bootstrap must be host:port[,host:port...], got {spec['bootstrap']!r}")
    if not (isinstance(spec["command"], str) and TOOL.match(spec["command"])):
        raise ValueError(f"kafka.command must be a command name or path, got {spec['command']!r}")
    return spec


def valid_path(path) -> bool:
    """An absolute path that prints on one line as it is (the output names it)."""
    return absolute_path(path) and path.isprintable() and path == path.strip()


def _probed(name: str, command: StringCommand) -> StringCommand:
    """Section ``name``: the command's output, then ``exit N`` (its status). Its errors are
    dropped: a failure is a missing sample."""
    return StringCommand(section(name), "; (", command, ") 2>/dev/null </dev/null;", 'echo "exit $?"')


def _disk(paths: list[str]) -> StringCommand:
    parts: list = [section("disk"), ";"]
    for path in paths:
        parts += ["printf 'path %s\\n'", QuoteString(path), "; (", disk_free_command(path), ") 2>/dev/null;"]
    return StringCommand(*parts)


def _kafka(stack: Stack, kafka: dict, timeout: int) -> StringCommand:
    groups = ("--all-groups",) if kafka["group"] is None else ("--group", QuoteString(kafka["group"]))
    # The tool's own --timeout ends its JVM in the container, where `limit` cannot reach.
    describe = compose_command(
        stack, "exec", "-T", QuoteString(kafka["service"]), QuoteString(kafka["command"]),
        "--bootstrap-server", QuoteString(kafka["bootstrap"]), "--describe",
        "--timeout", QuoteString(str(timeout * 1000)), *groups,
    )
    # A JVM starts before anything is asked: it gets twice as long.
    return _probed("kafka", StringCommand("limit", QuoteString(str(2 * timeout)), describe))


def _health(url: str, timeout: int) -> StringCommand:
    return StringCommand(
        section("health"), "; if command -v curl >/dev/null 2>&1; then",
        http_get_command(url, timeout), "; fi",
    )


class HostMetrics(WholeOutputFact):
    """
    Returns the host-side metrics of a stack, gathered in one round trip: the probes run
    side by side, so it takes as long as the slowest (about a second for memory, Kafka's
    tool a few seconds more where it is asked).

    .. code:: python

        {
            "health": {"status": 200, "seconds": 0.012},     # status 0: nothing answered
            "memory_pct": {"backend": 12.5, "mysql": 30.1},  # per service: its busiest container
            "disk_free_pct": {"/var/backups/layra": 31.9, "/var/lib/docker": 31.9},
            "kafka_lag": 1234,                               # summed over groups and partitions
        }

    + stack: the compose stack (its project's running containers; `docker compose` for Kafka)
    + health_url: fetched with a GET from the host
    + disk_paths: absolute paths; each gives the free share of the filesystem holding it, or
      its nearest existing parent (as `DiskFree`)
    + kafka: ``{"service", "group", "bootstrap", "command"}`` (`kafka_spec`) or None; the
      LAG column of ``<command> --describe`` (``--group``, or ``--all-groups`` without one)
      run in the service's container, partitions without a committed offset left out
    + timeout: seconds each probe may take (Kafka's tool twice that: its JVM starts first)

    A probe that fails gives None for its metric, a missing sample, and never fails the
    fact: ``health`` where the host has no curl, ``memory_pct`` where docker does not answer
    (``{}`` where the project runs no container), a path's free share where df gives none,
    ``kafka_lag`` where no ``kafka`` is given, the tool fails or reports an error. Memory is
    docker stats' MEM %: use less the page cache it could drop, of the container's limit
    (the host's memory where it has none); a container that stops meanwhile is left out.
    Runs under bash (process substitution).
    """

    shell_executable = "bash"

    def command(self, stack: Stack, health_url: str, disk_paths: list[str], kafka: dict | None = None,
                timeout: int = 5) -> StringCommand:
        stack = Stack.of(stack)
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
            raise ValueError(f"timeout must be a whole number of seconds, got {timeout!r}")
        if isinstance(disk_paths, str) or not all(valid_path(path) for path in disk_paths):
            raise ValueError(f"disk_paths must be a list of absolute paths, each on one line, got {disk_paths!r}")
        probes = [_disk(disk_paths), _probed("memory", StringCommand(MEMORY_SCRIPT))]
        if kafka is not None:
            probes.append(_kafka(stack, kafka_spec(kafka), timeout))
        probes.append(_health(health_url, timeout))  # last: its body cannot end another section
        # cat opens every <(...) at once: the probes run side by side, their output in order.
        substitutions: list = []
        for probe in probes:
            substitutions += ["<(", probe, ")"]
        return StringCommand(
            assign(project=stack.project, timeout=timeout), LIMIT, "cat", *substitutions, "|| true",
        )

    def process(self, output):
        sections = split_sections(output)
        return {
            "health": _health_answer(sections),
            "memory_pct": _memory_pct(sections.get("memory")),
            "disk_free_pct": _disk_free_pct(sections.get("disk", [])),
            "kafka_lag": _kafka_lag(sections.get("kafka")),
        }


def _succeeded(lines: list[str] | None) -> list[str] | None:
    """A `_probed` section's output, or None where the command failed (or did not run)."""
    if not lines or lines[-1].strip() != "exit 0":
        return None
    return lines[:-1]


def _health_answer(sections: dict) -> dict | None:
    # HttpResponse's status marker is a section marker too: put the answer back together.
    if "status" not in sections:
        return None  # no curl on the host
    try:
        answer = parse_http_response([*sections.get("health", []), STATUS_MARKER, *sections["status"]])
    except ValueError:
        return None
    return {"status": answer["status"], "seconds": answer["seconds"]}


def engine_memory_pct(stats: dict) -> float | None:
    """MEM % of an Engine API stats answer (or of its ``memory_stats``), computed as the
    docker CLI does (page cache that can be reclaimed, inactive_file, is not counted)."""
    memory = (stats.get("memory_stats") if "memory_stats" in stats else stats) or {}
    usage, limit = memory.get("usage"), memory.get("limit")
    if not usage or not limit:
        return None  # no figures: a container that stopped
    detail = memory.get("stats") or {}
    cgroup_v1 = detail.get("total_inactive_file")
    if cgroup_v1 is not None and cgroup_v1 < usage:
        usage -= cgroup_v1
    elif detail.get("inactive_file", 0) < usage:
        usage -= detail.get("inactive_file", 0)
    return round(100.0 * usage / limit, 2)


def _memory_pct(lines: list[str] | None) -> dict | None:
    lines = _succeeded(lines)
    if lines is None:
        return None
    services: dict[str, str] = {}
    samples: dict[str, float] = {}
    for line in lines:
        kind, _, rest = line.partition(" ")
        container, _, value = rest.partition(" ")
        try:
            if kind == "service":
                services[container] = value.strip()
            elif kind == "engine":
                sample = engine_memory_pct(json.loads(value))
                if sample is not None:
                    samples[container] = sample
            elif kind == "stats":
                samples[container] = float(value.strip().rstrip("%"))
        except (ValueError, TypeError, AttributeError):
            continue  # "--" for a container just starting, or a cut answer: no sample
    measured = {container: pct for container, pct in samples.items() if container in services}
    if services and not measured:
        return None
    memory: dict[str, float] = {}
    for container, pct in measured.items():
        service = services[container]
        memory[service] = max(pct, memory.get(service, pct))
    return dict(sorted(memory.items()))


def _disk_free_pct(lines: list[str]) -> dict:
    answers: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if line.startswith("path "):
            current = answers[line[len("path "):]] = []
        elif current is not None:
            current.append(line)
    free = {}
    for path, answer in answers.items():
        try:
            free[path] = parse_disk_free(answer)["free_pct"]
        except (IndexError, ValueError):
            free[path] = None
    return free


def _kafka_lag(lines: list[str] | None) -> int | None:
    """The sum of the LAG column of each group's table. The tool pads every row of a
    group's table like its header, so a row's LAG starts where the header's does."""
    lines = _succeeded(lines)
    if lines is None:
        return None
    total, column = 0, None
    for line in lines:
        if line.startswith("Error:"):
            return None  # printed on stdout, with status 0: a group that does not exist, ...
        words = line.split()
        if "LAG" in words and "LOG-END-OFFSET" in words:
            column = line.index(" LAG ") + 1
        elif words and column is not None:
            lag = line[column:].split()[:1]
            if lag == ["-"]:
                continue  # no committed offset
            try:
                total += int(lag[0])
            except (IndexError, ValueError):
                return None  # not the table we know
    return total
