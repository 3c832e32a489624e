"""
The watcher's controller-side sources against a tiny local HTTP server on 127.0.0.1 that
answers canned Prometheus API bodies: how answers become a value or a missing sample (None).
The real Prometheus is exercised in tests/e2e/test_prometheus_source.py.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
import urllib.parse
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pyinfra_deploys.sources import http_health, prometheus_value


def vector(*values: str) -> dict:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"instance": f"host{i}"}, "value": [1717000000.0, v]} for i, v in enumerate(values)]}}


def scalar(value: str) -> dict:
    return {"status": "success", "data": {"resultType": "scalar", "result": [1717000000.0, value]}}


# query -> (HTTP status, body, delay in seconds)
ANSWERS: dict[str, tuple[int, bytes | dict, float]] = {
    "pool_usage": (200, vector("0.25", "0.75", "0.5"), 0),
    "one_series": (200, vector("0.42"), 0),
    "some_nan": (200, vector("NaN", "0.1", "NaN"), 0),
    "all_nan": (200, vector("NaN", "NaN"), 0),
    "empty": (200, vector(), 0),
    "inf": (200, vector("+Inf", "3"), 0),
    "scalar": (200, scalar("1.5"), 0),
    "scalar_nan": (200, scalar("NaN"), 0),
    "matrix": (200, {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {}, "values": [[1717000000.0, "1"], [1717000001.0, "2"]]}]}}, 0),
    "bad_data": (400, {"status": "error", "errorType": "bad_data", "error": "parse error"}, 0),
    "error_200": (200, {"status": "error", "errorType": "execution", "error": "boom"}, 0),
    "not_json": (200, b"<html>proxy error</html>", 0),
    "wrong_shape": (200, {"status": "success", "data": {"resultType": "vector", "result": [{"value": "x"}]}}, 0),
    "json_list": (200, b"[1, 2]", 0),
    "slow": (200, vector("1"), 2.0),
}


class Handler(BaseHTTPRequestHandler):
    seen: list[dict] = []

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/api/v1/query":
            query = urllib.parse.parse_qs(url.query)["query"][0]
            Handler.seen.append({"query": query, "authorization": self.headers.get("Authorization")})
            status, body, delay = ANSWERS.get(query, (200, vector("7"), 0))
            time.sleep(delay)
            self.answer(status, body if isinstance(body, bytes) else json.dumps(body).encode())
        elif url.path.startswith("/status/"):
            self.answer(int(url.path.rsplit("/", 1)[1]), b"x")
        elif url.path == "/slow":
            time.sleep(2.0)
            self.answer(200, b"late")
        elif url.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/status/200")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.answer(404, b"not found")

    def answer(self, status: int, body: bytes):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@contextmanager
def closed_port():
    """A loopback port that refuses connections: bound (so nothing else takes it), not listening."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def test_a_vector_gives_the_max_over_its_series(server):
    assert prometheus_value(server, "pool_usage") == 0.75
    assert prometheus_value(server, "one_series") == 0.42


def test_nan_series_are_ignored_and_an_all_nan_vector_is_missing(server):
    assert prometheus_value(server, "some_nan") == 0.1
    assert prometheus_value(server, "all_nan") is None


def test_an_empty_vector_is_missing(server):
    assert prometheus_value(server, "empty") is None


def test_plus_inf_is_a_real_value(server):
    assert prometheus_value(server, "inf") == math.inf


def test_a_scalar_gives_its_value_and_a_nan_scalar_is_missing(server):
    assert prometheus_value(server, "scalar") == 1.5
    assert prometheus_value(server, "scalar_nan") is None


def test_a_matrix_is_not_one_number_so_missing(server):
    assert prometheus_value(server, "matrix") is None


def test_error_status_malformed_json_and_wrong_shapes_are_missing(server):
    for query in ("bad_data", "error_200", "not_json", "wrong_shape", "json_list"):
        assert prometheus_value(server, query) is None, query


def test_a_slow_prometheus_is_missing_after_the_timeout(server):
    start = time.monotonic()
    assert prometheus_value(server, "slow", timeout=0.3) is None
    assert time.monotonic() - start < 1.5


def test_an_unreachable_prometheus_is_missing():
    with closed_port() as port:
        assert prometheus_value(f"http://127.0.0.1:{port}", "up", timeout=1) is None


def test_the_query_is_url_encoded_and_a_trailing_slash_is_fine(server):
    query = 'sum(rate(http_requests_total{status=~"5.."}[1m])) / sum(rate(http_requests_total[1m])) + 0'
    assert prometheus_value(server + "/", query) == 7.0
    assert Handler.seen[-1]["query"] == query


def test_the_bearer_token_comes_from_the_named_environment_variable(server, monkeypatch):
    monkeypatch.setenv("LAYRA_TEST_PROM_TOKEN", "s3cret")
    assert prometheus_value(server, "one_series", token_env="LAYRA_TEST_PROM_TOKEN") == 0.42
    assert Handler.seen[-1]["authorization"] == "Bearer s3cret"

    monkeypatch.delenv("LAYRA_TEST_PROM_TOKEN")
    assert prometheus_value(server, "one_series", token_env="LAYRA_TEST_PROM_TOKEN") == 0.42
    assert Handler.seen[-1]["authorization"] is None
    assert prometheus_value(server, "one_series") == 0.42
    assert Handler.seen[-1]["authorization"] is None


def test_http_health_returns_any_status_as_is_with_the_time_taken(server):
    ok = http_health(f"{server}/status/200")
    assert ok["status"] == 200 and 0 < ok["seconds"] < 5
    assert http_health(f"{server}/status/503")["status"] == 503
    assert http_health(f"{server}/status/404")["status"] == 404


def test_http_health_does_not_follow_redirects(server):
    assert http_health(f"{server}/moved")["status"] == 302


def test_http_health_is_status_0_when_nothing_answers(server):
    with closed_port() as port:
        down = http_health(f"http://127.0.0.1:{port}/", timeout=1)
    assert down["status"] == 0 and down["seconds"] < 1


def test_http_health_is_status_0_on_a_timeout(server):
    slow = http_health(f"{server}/slow", timeout=0.3)
    assert slow["status"] == 0 and 0.3 <= slow["seconds"] < 1.5
