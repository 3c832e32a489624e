"""
Facts about the stack's git checkout: which commit runs, whether the tree is dirty,
and where a target commit stands relative to it.
"""

from __future__ import annotations

import re

from pyinfra.api import QuoteString, StringCommand

from .shell import WholeOutputFact, section, split_sections

# A ref an operator may name: a sha, a tag or a branch. Anything else never reaches git.
# \Z, not $: `$` also matches before a final newline ("v1.0.0\n" would pass).
REF_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}\Z")
REF_RULE = "a sha, tag or branch name: A-Z a-z 0-9 . _ / -, starting with a letter or digit, without '..'"


def valid_ref(ref) -> bool:
    """A name git takes as a ref (check-ref-format's rules, a little stricter): never an
    option (``-x``), a range (``a..b``), a reflog entry (``HEAD@{1}``) or shell."""
    return (
        isinstance(ref, str)
        and bool(REF_PATTERN.match(ref))
        and ".." not in ref
        and "//" not in ref
        and "/." not in ref
        and not ref.endswith((".lock", "/", "."))
    )


def git_command(stack_dir: str, *args) -> StringCommand:
    """`git -C <stack_dir> ...`; string args are passed as tokens, quote values yourself."""
    return StringCommand("git", "-C", QuoteString(stack_dir), *args)


class StackRepo(WholeOutputFact):
    """
    Returns the commit checked out in the stack's repository and what is uncommitted,
    or ``None`` when the directory is not a git repository.

    .. code:: python

        {
            "commit": "9f8e7d...",
            "dirty": ["M docker-compose.yml"],
            "remotes": ["origin"],
        }
    """

    def requires_command(self, stack_dir: str) -> str:
        return "git"

    def command(self, stack_dir: str) -> StringCommand:
        return StringCommand(
            "if", git_command(stack_dir, "rev-parse", "--verify", "--quiet", "HEAD"), ">/dev/null;",
            "then",
            section("commit"), ";", git_command(stack_dir, "rev-parse", "HEAD"), ";",
            section("dirty"), ";",
            git_command(stack_dir, "status", "--porcelain", "--untracked-files=no"), ";",
            section("remotes"), ";", git_command(stack_dir, "remote"), ";",
            "fi",
        )

    def process(self, output):
        sections = split_sections(output)
        if "commit" not in sections:
            return None
        return {
            "commit": sections["commit"][0].strip(),
            "dirty": [line.strip() for line in sections.get("dirty", []) if line.strip()],
            "remotes": [line.strip() for line in sections.get("remotes", []) if line.strip()],
        }


class StackTarget(WholeOutputFact):
    """
    Resolves ``ref`` in the stack's repository and compares it with HEAD, or returns
    ``None`` when the repository does not know the ref.

    .. code:: python

        {
            "commit": "a1b2c3...",
            "subject": "release 1.0.0: knowledge bases",
            "undone": [{"commit": "9f8e7d...", "subject": "release 1.1.0"}],  # HEAD only
            "added": [],                                                    # target only
            "changed_files": ["backend/app.py", "docker-compose.yml"],
        }
    """

    def requires_command(self, stack_dir: str, ref: str) -> str:
        return "git"

    def command(self, stack_dir: str, ref: str) -> StringCommand:
        target = QuoteString(f"{ref}^{{commit}}")
        return StringCommand(
            "if", "target=$(", git_command(stack_dir, "rev-parse", "--verify", "--quiet", target), ");",
            "then",
            section("commit"), ";", 'echo "$target";',
            section("subject"), ";", git_command(stack_dir, "log", "-1", "--format=%s", '"$target"'), ";",
            section("undone"), ";",
            git_command(stack_dir, "log", QuoteString("--format=%H %s"), '"$target"..HEAD'), ";",
            section("added"), ";",
            git_command(stack_dir, "log", QuoteString("--format=%H %s"), 'HEAD.."$target"'), ";",
            section("changed_files"), ";",
            git_command(stack_dir, "diff", "--name-only", "HEAD", '"$target"'), ";",
            "fi",
        )

    def process(self, output):
        sections = split_sections(output)
        if "commit" not in sections:
            return None

        def commits(lines):
            return [
                {"commit": sha, "subject": subject}
                for sha, _, subject in (line.strip().partition(" ") for line in lines if line.strip())
            ]

        return {
            "commit": sections["commit"][0].strip(),
            "subject": "\n".join(sections.get("subject", [])).strip(),
            "undone": commits(sections.get("undone", [])),
            "added": commits(sections.get("added", [])),
            "changed_files": [line.strip() for line in sections.get("changed_files", []) if line.strip()],
        }


class StackTag(WholeOutputFact):
    """
    Returns the commit a tag of the stack's repository points to, or ``None`` when the
    tag does not exist.

    .. code:: python

        "1f0c2d9a4b5e6f708192a3b4c5d6e7f801234567"
    """

    def requires_command(self, stack_dir: str, tag: str) -> str:
        return "git"

    def command(self, stack_dir: str, tag: str) -> StringCommand:
        # --quiet: a missing tag prints nothing and fails; that failure is the answer.
        return StringCommand(
            git_command(stack_dir, "rev-parse", "--verify", "--quiet", QuoteString(f"refs/tags/{tag}^{{commit}}")),
            "|| true",
        )

    def process(self, output):
        commit = "".join(output).strip()
        return commit or None


# An image id as `docker inspect` reports it; nothing else is tagged or compared.
IMAGE_ID_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}\Z")
# An image name we can give to `docker tag` as is: no interpolation left (`${TAG}`), no option.
IMAGE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}\Z")


def valid_image_id(image_id) -> bool:
    return isinstance(image_id, str) and bool(IMAGE_ID_PATTERN.match(image_id))


def pinnable_image(name) -> bool:
    """Whether ``name`` can be pointed at a recorded image id (``docker tag``)."""
    return isinstance(name, str) and bool(IMAGE_NAME_PATTERN.match(name))


class ImagesPresent(WholeOutputFact):
    """
    Returns which of the image ids ``ids`` exist on the host (tagged or not), sorted.

    .. code:: python

        ["sha256:1a2b3c..."]
    """

    @staticmethod
    def default() -> list:
        return []

    def requires_command(self, ids: list[str]) -> str:
        return "docker"

    def command(self, ids: list[str]) -> StringCommand:
        wanted = [arg for image_id in sorted(set(ids)) for arg in ("-e", QuoteString(image_id))]
        if not wanted:
            return StringCommand("true")
        # One listing for every id; a docker that cannot list fails the fact, no match is [].
        return StringCommand(
            "all=$(docker image ls -aq --no-trunc) &&",
            '{ printf "%s\\n" "$all" | grep -Fx', *wanted, "|| true; }",
        )

    def process(self, output):
        return sorted({line.strip() for line in output if valid_image_id(line.strip())})
