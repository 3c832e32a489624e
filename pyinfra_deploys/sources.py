"""
The rollback watcher's metric sources that are read from the controller itself, not over SSH:
a Prometheus query and an HTTP health check from the watcher's own vantage point.

Plain urllib, no state. `prometheus_value` returns a float, or None for a *missing sample*:
Prometheus unreachable or too slow, a non-success or malformed answer, an empty result, NaN
(such as 0/0: no traffic in the window), or a result that is not one number (matrix,
string). The rule engine never counts a missing sample as a pass. +Inf and -Inf are real
values (x/0 with x > 0 is "infinitely bad"), returned as floats.

`http_health` never raises: it returns the status as answered (4xx/5xx and 3xx included,
redirects are not followed) or status 0 when nothing answered (refused, timeout, DNS).
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request

log = logging.getLogger(__name__)

_FAILURES = (OSError, http.client.HTTPException, ValueError)  # URLError, timeouts, bad JSON


def prometheus_value(base_url: str, query: str, timeout: float = 5.0,
                     token_env: str | None = None, worst=max) -> float | None:
    """The value of an instant PromQL query, or None when the sample is missing.

    A vector gives the worst of its series: ``worst`` is max (the default: a rule with
    ``>``) or min (a rule with ``<``); NaN series are ignored, all-NaN is missing. A scalar
    gives its value. With `token_env`, the environment variable of that name (when set and
    non-empty) is sent as a bearer token, never on to a redirect's target.
    """
    url = f"{base_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    token = os.environ.get(token_env) if token_env else None
    if token:
        request.add_unredirected_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:  # 400/422 on a bad query: a JSON error body
        log.debug("prometheus %s: HTTP %s for %r", base_url, error.code, query)
        error.close()
        return None
    except _FAILURES as error:
        log.debug("prometheus %s: no answer for %r: %s", base_url, query, error)
        return None
    return _parse_query_answer(answer, worst)


def _parse_query_answer(answer: object, worst=max) -> float | None:
    """The one number an /api/v1/query answer carries, or None (see the module docstring)."""
    try:
        if answer.get("status") != "success":
            log.debug("prometheus: %s: %s", answer.get("errorType"), answer.get("error"))
            return None
        data = answer["data"]
        if data["resultType"] == "scalar":
            values = [float(data["result"][1])]
        elif data["resultType"] == "vector":
            values = [float(sample["value"][1]) for sample in data["result"]]
        else:  # matrix (a range selector) or string: not one number
            return None
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        log.debug("prometheus: malformed answer")
        return None
    values = [v for v in values if not math.isnan(v)]
    return worst(values) if values else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises HTTPError with the 3xx status, returned as is


def http_health(url: str, timeout: float = 5.0) -> dict:
    """{"status": <HTTP status, 0 when nothing answered>, "seconds": <time to the full answer>}."""
    opener = urllib.request.build_opener(_NoRedirect)
    start = time.monotonic()
    try:
        with opener.open(url, timeout=timeout) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
        error.close()
    except _FAILURES as error:
        log.debug("health %s: no answer: %s", url, error)
        status = 0
    return {"status": status, "seconds": round(time.monotonic() - start, 6)}
