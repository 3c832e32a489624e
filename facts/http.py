"""
Facts from HTTP endpoints, fetched on the host itself (services publish on its loopback).
"""

from __future__ import annotations

from pyinfra.api import FactBase, QuoteString, StringCommand

STATUS_MARKER = "--- layra:status ---"


class HttpResponse(FactBase):
    """
    Returns the status and the start of the body of a GET on ``url``, made from the host.
    ``status`` is 0 when nothing answered.

    .. code:: python

        {"status": 200, "body": '{"status":"UP"}', "seconds": 0.004}
    """

    def requires_command(self, url: str, timeout: int = 5) -> str:
        return "curl"

    def command(self, url: str, timeout: int = 5) -> StringCommand:
        return StringCommand(
            "curl", "-sS", "--max-time", QuoteString(str(timeout)),
            "-w", QuoteString(f"\\n{STATUS_MARKER}\\n%{{http_code}} %{{time_total}}\\n"),
            QuoteString(url), "2>&1 || true",
        )

    def process(self, output):
        body, status, seconds = [], 0, 0.0
        for index, line in enumerate(output):
            if line.strip() == STATUS_MARKER and index + 1 < len(output):
                code, _, elapsed = output[index + 1].partition(" ")
                status, seconds = int(code or 0), float(elapsed or 0)
                break
            body.append(line)
        return {"status": status, "body": "\n".join(body).strip()[:300], "seconds": seconds}
