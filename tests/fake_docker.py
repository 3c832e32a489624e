"""A stand-in for the docker CLI, for the unit tier: our shell scripts run for real (find,
du, awk, the directories on this machine) while `docker` on their PATH answers from a small
world kept in a JSON file. It knows only the calls our scripts make, and fails loudly
(exit 2) on any other, so that a script calling docker differently fails its test rather
than passing on a guess.

The world: containers (id, project, service, one-off or not, status, health and its log,
volume mounts), volumes (driver, options), what a service's new containers start as
(``up``), and every call made (``calls``). ``docker compose`` acts on the project it is
given with ``-p``: ``up --force-recreate``, ``up --scale``, ``ps -q``, ``start``, ``run -d``.

    docker = FakeDocker(tmp_path, project="layra")
    old = docker.container("backend", health="healthy")
    subprocess.run(["bash", "-c", command], env=docker.env)
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
from pathlib import Path

SERVICE_LABEL = "com.docker.compose.service"
PROJECT_LABEL = "com.docker.compose.project"
ONEOFF_LABEL = "com.docker.compose.oneoff"


class FakeDocker:
    """The world, and the environment that puts its `docker` first on the PATH."""

    def __init__(self, directory: Path, project: str = "layra"):
        self.project = project
        self.path = directory / "docker-world.json"
        bin_dir = directory / "fake-bin"
        bin_dir.mkdir(exist_ok=True)
        (bin_dir / "docker").write_text(f'#!/bin/sh\nexec {sys.executable} {Path(__file__).resolve()} "$@"\n')
        (bin_dir / "docker").chmod(0o755)
        self.env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_DOCKER_WORLD": str(self.path)}
        self.save({"containers": [], "volumes": {}, "up": {}, "reload_fails": False, "created": 0, "calls": []})

    def load(self) -> dict:
        return json.loads(self.path.read_text())

    def save(self, world: dict):
        self.path.write_text(json.dumps(world, indent=1))

    def container(self, service: str, status: str = "running", health: str | None = None, log=(),
                  mounts=(), project: str | None = None, oneoff: bool = False, healthcheck=(),
                  probe: int | list[int] = 0, depends_on: str | None = "") -> str:
        """Add a container; its full id. ``mounts``: (volume, path on the host, path inside);
        ``healthcheck``: its Config.Healthcheck.Test (``["CMD-SHELL", "..."]``), whose run
        through ``docker exec`` exits ``probe`` (a list: one status per run, the last one
        kept); ``depends_on``: compose's label of that name
        (``"milvus-etcd:service_healthy:false"``; None: no such label)."""
        world = self.load()
        made = new_container(world, project or self.project, service, {"status": status, "health": health,
                                                                        "log": list(log)})
        made["oneoff"] = oneoff
        made["healthcheck"], made["probe"], made["depends_on"] = list(healthcheck), probe, depends_on
        made["mounts"] = [{"name": n, "source": s, "destination": d} for n, s, d in mounts]
        self.save(world)
        return made["id"]

    def volume(self, name: str, driver: str = "local", options: dict | None = None):
        world = self.load()
        world["volumes"][name] = {"driver": driver, "options": options}
        self.save(world)

    def starts_as(self, service: str, status: str = "running", health: str | None = None, log=(),
                  exit_code: int = 0, pings=(), output=(), copying: int = 0):
        """What the service's containers that `docker compose up` (or `run -d`) creates start
        as, and what `docker start` makes of its stopped ones: ``exit_code`` once exited;
        ``pings``, what `redis-cli -s <socket> ping` run in it answers, one per call (the
        last one kept); ``output``, what `docker logs` prints; ``copying``, how many calls
        of `test -e /tmp/layra-copy.copying` in it find the marker (redis_copies.sh serve)."""
        world = self.load()
        world["up"][service] = {"status": status, "health": health, "log": list(log), "exit_code": exit_code,
                                "pings": list(pings), "output": list(output), "copying": copying}
        self.save(world)

    def set(self, **values):
        world = self.load()
        world.update(values)
        self.save(world)

    def ids(self, service: str) -> list[str]:
        """The full ids of the service's containers, in the order they were created."""
        return [c["id"] for c in self.load()["containers"] if c["service"] == service]

    @property
    def calls(self) -> list[list[str]]:
        return self.load()["calls"]


def new_container(world: dict, project: str, service: str, start: dict) -> dict:
    world["created"] += 1
    made = {"id": hashlib.sha256(f"{service}-{world['created']}".encode()).hexdigest(), "project": project,
            "service": service, "oneoff": False, "status": start.get("status", "running"),
            "health": start.get("health"), "log": list(start.get("log", [])), "mounts": [],
            "exit_code": start.get("exit_code", 0), "pings": list(start.get("pings", [])),
            "output": list(start.get("output", [])), "copying": start.get("copying", 0)}
    world["containers"].append(made)
    return made


def labels(container: dict) -> dict:
    return {PROJECT_LABEL: container["project"], SERVICE_LABEL: container["service"],
            ONEOFF_LABEL: "True" if container["oneoff"] else "False"}


def matches(container: dict, filters: list[str]) -> bool:
    for each in filters:
        kind, _, value = each.partition("=")
        if kind == "label":
            key, _, wanted = value.partition("=")
            if labels(container).get(key) != wanted:
                return False
        elif kind == "status":
            if container["status"] != value:
                return False
        else:
            fail(f"filter {each!r}")
    return True


def find(world: dict, reference: str) -> dict | None:
    found = [c for c in world["containers"] if c["id"].startswith(reference)]
    return found[0] if len(found) == 1 and len(reference) >= 12 else None


def fail(what: str):
    print(f"fake docker: not a call our scripts make: {what}", file=sys.stderr)
    sys.exit(2)


def options(args: list[str], flags: set[str], valued: set[str]) -> tuple[dict, list[str]]:
    """Split ``args`` into options (repeatable ones as lists) and the rest, in order."""
    seen: dict = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in flags:
            seen[arg] = True
        elif arg in valued:
            seen.setdefault(arg, []).append(args[i + 1])
            i += 1
        elif arg.startswith("-"):
            fail(f"option {arg!r}")
        else:
            rest.append(arg)
        i += 1
    return seen, rest


def ps(world: dict, args: list[str]):
    seen, rest = options(args, {"-a", "-q", "-aq", "--no-trunc"}, {"--filter", "--format"})
    if rest:
        fail(f"ps {rest}")
    everything = "-a" in seen or "-aq" in seen
    listed = [c for c in world["containers"] if (everything or c["status"] == "running")
              and matches(c, seen.get("--filter", []))]
    for c in listed:
        ident = c["id"] if "--no-trunc" in seen else c["id"][:12]
        if "-q" in seen or "-aq" in seen:
            print(ident)
        elif seen.get("--format") == ['{{.ID}}{{"\\t"}}{{.Mounts}}']:
            print(f"{ident}\t{','.join(m['name'] for m in c['mounts'])}")
        else:
            fail(f"ps {args}")


def inspect_line(template: str, c: dict) -> str:
    health = c["health"]
    if 'index .Config.Labels "com.docker.compose.service"' in template and "range .Mounts" in template:
        mounts = "".join(f"\t{m['name']}\t{m['source']}\t{m['destination']}" for m in c["mounts"])
        return f"{c['service']}\t{c['status']}{mounts}"
    if template == "{{.State.Status}} {{.State.ExitCode}}":
        return f"{c['status']} {c.get('exit_code', 0)}"
    if template == "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}healthy{{end}}":
        return f"{c['status']} {health or 'healthy'}"
    if template.startswith('{{if and (eq .State.Status "running") .State.Health}}'):
        return health if c["status"] == "running" and health else c["status"]
    if template.startswith("{{if .State.Health}}{{range .State.Health.Log}}{{json .Output}}{{println}}"):
        return "".join(json.dumps(line) + "\n" for line in c["log"]) if health else ""
    if template.startswith("{{if .State.Health}}{{len .State.Health.Log}}"):
        return str(len(c["log"]) if health else 0)
    test = c.get("healthcheck") or []
    if template == "{{with .Config.Healthcheck}}{{index .Test 0}}{{end}}":
        return test[0] if test else ""
    if template == "{{index .Config.Healthcheck.Test 1}}":
        return test[1]
    if template == '{{range slice .Config.Healthcheck.Test 1}}{{printf "%s\\x00" .}}{{end}}':
        return "".join(f"{arg}\0" for arg in test[1:])
    if template == ('{{range $k, $v := .Config.Labels}}{{if eq $k "com.docker.compose.depends_on"}}'
                    'labelled:{{$v}}{{end}}{{end}}'):
        return "" if c.get("depends_on") is None else f"labelled:{c['depends_on']}"
    if template == "{{.Id}} {{if .State.Health}}{{.State.Health.Status}}{{end}} {{.Name}}":
        return f"{c['id']} {health or ''} /{c['project']}-{c['service']}-1"
    fail(f"inspect template {template!r}")


def inspect(world: dict, args: list[str]) -> int:
    seen, rest = options(args, set(), {"-f"})
    rc = 0
    for reference in rest:
        c = find(world, reference)
        if c is None:
            print(f"Error: No such object: {reference}", file=sys.stderr)
            rc = 1
            continue
        print(inspect_line(seen["-f"][0], c))  # docker ends each container's answer with a newline
    return rc


def volume_inspect(world: dict, args: list[str]) -> int:
    seen, rest = options(args, set(), {"-f"})
    if seen.get("-f") != ['{{.Name}}{{"\\t"}}{{.Driver}}{{"\\t"}}{{json .Options}}']:
        fail(f"volume inspect {args}")
    rc = 0
    for name in rest:
        volume = world["volumes"].get(name)
        if volume is None:
            print(f"Error response from daemon: get {name}: no such volume", file=sys.stderr)
            rc = 1
            continue
        print(f"{name}\t{volume['driver']}\t{json.dumps(volume['options'])}")
    return rc


def containers_of(world: dict, project: str, service: str) -> list[dict]:
    return [c for c in world["containers"] if c["project"] == project and c["service"] == service
            and not c["oneoff"]]


def compose(world: dict, args: list[str]) -> int:
    i, project = 0, None
    while args[i].startswith("-"):
        if args[i] not in ("--project-directory", "-p", "-f", "--env-file"):
            fail(f"compose option {args[i]!r}")
        if args[i] == "-p":
            project = args[i + 1]
        i += 2
    command, rest = args[i], args[i + 1:]
    if command == "ps":
        seen, services = options(rest, {"-q"}, set())
        for service in services:
            for c in containers_of(world, project, service):
                if c["status"] == "running":
                    print(c["id"])
        return 0
    if command == "run":
        service = next(i for i, word in enumerate(rest) if not word.startswith("-") and rest[i - 1] not in
                       ("--user", "--entrypoint"))  # what follows the service is its command
        seen, _ = options(rest[:service], {"-d", "--no-deps"}, {"--user", "--entrypoint"})
        if "-d" not in seen or "--no-deps" not in seen:
            fail(f"compose run {rest}")
        made = new_container(world, project, rest[service], world["up"].get(rest[service], {}))
        made["oneoff"] = True
        print(made["id"])
        return 0
    if command == "start":
        return start_containers(world, [c["id"] for service in rest for c in containers_of(world, project, service)], quiet=True)
    if command != "up":
        fail(f"compose {command}")
    seen, services = options(rest, {"-d", "--no-deps", "--force-recreate", "--no-recreate"}, {"--scale"})
    (service,) = services
    start = world["up"].get(service, {})
    present = containers_of(world, project, service)
    if "--force-recreate" in seen:
        world["containers"] = [c for c in world["containers"] if c not in present]
        new_container(world, project, service, start)
    else:
        name, _, count = seen["--scale"][0].partition("=")
        if name != service or "--no-recreate" not in seen:
            fail(f"compose up {rest}")
        for _ in range(int(count) - len(present)):
            new_container(world, project, service, start)
    return 0


def exec_in(world: dict, args: list[str]) -> int:
    c = find(world, args[0]) if args else None
    if c and c.get("healthcheck") and args[1:] in (["/bin/sh", "-c", *c["healthcheck"][1:2]], c["healthcheck"][1:]):
        if isinstance(c["probe"], list):  # one exit status per run, the last one kept
            return c["probe"].pop(0) if len(c["probe"]) > 1 else c["probe"][0]
        return c["probe"]
    if c and args[1:3] == ["redis-cli", "-s"] and args[4:] == ["ping"]:
        if not c["pings"] or c["status"] != "running":
            print("Could not connect to Redis at the socket: No such file or directory")
            return 1
        print(c["pings"].pop(0) if len(c["pings"]) > 1 else c["pings"][0])
        return 0
    if c and args[1:] == ["test", "-e", "/tmp/layra-copy.copying"]:
        c["copying"] = max(c.get("copying", 0) - 1, -1)
        return 0 if c["copying"] >= 0 else 1
    reference, shell, flag, script = args
    if find(world, reference) is None or (shell, flag) != ("sh", "-c"):
        fail(f"exec {args}")
    if "nginx -s reload" in script:
        if world["reload_fails"]:
            print("nginx: [emerg] host not found in upstream", file=sys.stderr)
            return 1
        return 0
    if "shutting [d]own" in script:
        return 1  # no worker of a previous configuration left
    fail(f"exec {script!r}")


def start_containers(world: dict, references: list[str], quiet: bool = False) -> int:
    """`docker start` (and `docker compose start`, ``quiet``): each container runs (or starts
    as ``starts_as`` says); a running one is left as it is. Its id printed, as docker does."""
    for reference in references:
        c = find(world, reference)
        if c is None:
            print(f"Error response from daemon: No such container: {reference}", file=sys.stderr)
            return 1
        if c["status"] != "running":
            after = world["up"].get(c["service"], {"status": "running", "health": c["health"] and "starting"})
            c["status"], c["health"] = after["status"], after["health"]
            c["log"] = list(after.get("log", []))
        if not quiet:
            print(reference)
    return 0


def remove(world: dict, references: list[str], stop_only: bool = False, force: bool = False) -> int:
    for reference in references:
        c = find(world, reference)
        if c is None:
            print(f"Error response from daemon: No such container: {reference}", file=sys.stderr)
            return 1
        if not (stop_only or force) and c["status"] == "running":
            print(f"Error response from daemon: cannot remove container {reference}: container is running",
                  file=sys.stderr)
            return 1
        if stop_only:
            c["status"] = "exited"
        else:
            world["containers"].remove(c)
        print(reference)
    return 0


def main(args: list[str]) -> int:
    path = Path(os.environ["FAKE_DOCKER_WORLD"])
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        world = json.loads(path.read_text())
        world["calls"].append(args)
        if args[:1] == ["ps"]:
            rc = ps(world, args[1:]) or 0
        elif args[:1] == ["inspect"]:
            rc = inspect(world, args[1:])
        elif args[:2] == ["volume", "inspect"]:
            rc = volume_inspect(world, args[2:])
        elif args[:1] == ["compose"]:
            rc = compose(world, args[1:])
        elif args[:1] == ["exec"]:
            rc = exec_in(world, args[1:])
        elif args[:3] == ["logs", "--tail", "5"] and len(args) == 4 and find(world, args[3]):
            print("\n".join(find(world, args[3])["output"][-5:]))
            rc = 0
        elif args[:1] == ["start"]:
            rc = start_containers(world, args[1:])
        elif args[:1] == ["stop"]:
            rc = remove(world, args[1:], stop_only=True)
        elif args[:2] == ["rm", "-f"]:
            rc = remove(world, args[2:], force=True)
        elif args[:1] == ["rm"]:
            rc = remove(world, args[1:])
        else:
            fail(" ".join(args))
        path.write_text(json.dumps(world, indent=1))
        return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
