"""
Redis engine facts, and the `redis-cli` command every Redis fact and operation runs:
inside the service's container, authenticated through ``REDISCLI_AUTH`` read on the host
from the stack's env file (never ``-a PASSWORD`` on a command line).
"""

from __future__ import annotations

from pyinfra.api import FactBase, QuoteString, StringCommand

from .compose import Stack, compose_command
from .secrets import export_from_env_file
from .shell import parse_probe, probe


def redis_cli(stack: Stack, service: str, password_key: str | None, *args) -> StringCommand:
    export = [export_from_env_file(stack.env_path, password_key, "REDISCLI_AUTH")] if password_key else []
    env = ["-e", "REDISCLI_AUTH"] if password_key else []
    return StringCommand(
        *export,
        compose_command(stack, "exec", "-T", *env, QuoteString(service), "redis-cli", "--no-raw", *args),
    )


class RedisFactBase(FactBase):
    """Facts that ask the Redis server of a stack's service."""

    abstract = True

    def requires_command(self, *args, **kwargs) -> str:
        return "docker"


class RedisPing(RedisFactBase):
    """
    Returns whether the server answers ``PING`` with the stack's credentials.

    .. code:: python

        {"ok": True, "output": "PONG"}
    """

    def command(self, stack: Stack, service: str = "redis",
                password_key: str | None = "REDIS_PASSWORD") -> StringCommand:
        stack = Stack.of(stack)
        return probe(redis_cli(stack, service, password_key, "ping"))

    def process(self, output):
        ok = parse_probe(output)
        return {**ok, "ok": ok["ok"] and "PONG" in ok["output"]}
