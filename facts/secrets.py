"""
Reading credentials on the host, from the stack's env file, into the environment of
the command that needs them: the value travels through a pipe and an exported
variable, never through any process's command line, pyinfra's output or our logs.
"""

from __future__ import annotations

import re

from pyinfra.api import QuoteString, StringCommand

KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


def export_from_env_file(env_file: str, key: str, variable: str) -> StringCommand:
    """Shell that sets and exports ``variable`` to ``key``'s value in ``env_file``.

    Compose env files are not shell: the value is taken literally, with one pair of
    surrounding quotes removed; a missing key fails with a message naming it.
    """
    if not KEY_PATTERN.match(key) or not KEY_PATTERN.match(variable):
        raise ValueError(f"not an environment variable name: {key!r}")
    return StringCommand(
        f"{variable}=$(sed -n", QuoteString(f"s/^{key}=//p"), QuoteString(env_file),
        "| tail -n 1 | sed -e", QuoteString(r's/^"\(.*\)"$/\1/'), "-e", QuoteString(r"s/^'\(.*\)'$/\1/"), ")",
        f'&& [ -n "${variable}" ]',
        "|| { echo", QuoteString(f"{key} is not set in {env_file}"), ">&2; exit 1; };",
        f"export {variable};",
    )
