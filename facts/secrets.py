"""
Reading credentials on the host, from the stack's env file, into the environment of
the command that needs them: the value travels through a pipe and an exported
variable, never through any process's command line, pyinfra's output or our logs.

The env file is read by ``docker compose`` itself (``scripts/env_value.sh``), so a value
is what compose gives the stack's containers: its dotenv rules for quotes, escapes,
``${VAR}`` interpolation, comments, ``export`` and CRLF, not our reading of them.
"""

from __future__ import annotations

import re

from pyinfra.api import QuoteString, StringCommand

from .shell import script

KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


def export_from_env_file(env_file: str, key: str, variable: str) -> StringCommand:
    """Shell that sets and exports ``variable`` to ``key``'s value in ``env_file`` (as
    ``docker compose`` reads it); a key that is missing or empty fails, naming it.

    The value is taken whole: the ``.`` printed after it keeps ``$(...)`` from dropping
    trailing newlines a quoted value may end with.
    """
    if not KEY_PATTERN.match(key) or not KEY_PATTERN.match(variable):
        raise ValueError(f"not an environment variable name: {key!r}")
    return StringCommand(
        script("env_value"), ";",
        f"{variable}=$(layra_env_value", QuoteString(key), QuoteString(env_file), "&& echo .)",
        f'&& {variable}="${{{variable}%.}}" && [ -n "${variable}" ]',
        "|| { echo", QuoteString(f"{key} is not set in {env_file}"), ">&2; exit 1; };",
        f"export {variable};",
    )
