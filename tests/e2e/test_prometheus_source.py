"""
The watcher's Prometheus source against a REAL Prometheus (Debian's /usr/bin/prometheus,
installed by .ci/run) scraping, every second, a tiny exporter this test runs on 127.0.0.1
whose gauges and counters the tests set. Nothing here needs the SSH sandbox; everything
stays on loopback. Without the prometheus binary these tests fail (they never skip).
"""

from __future__ import annotations

import math
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pyinfra_deploys.sources import http_health, prometheus_value

pytestmark = pytest.mark.e2e

WAIT = 15.0  # seconds to wait for Prometheus to scrape a change


class Exporter:
    """Text exposition format; the tests set the values, a scrape reads them under the lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pool_usage = {"main": 0.42}
        self.worker_pool_usage = {"a": 0.25, "b": 0.75, "c": 0.5}
        self.requests = {"200": 0, "500": 0}
        self.idle_requests = 0  # a counter that never moves: its rate ratio is 0/0

    def exposition(self) -> bytes:
        with self.lock:
            lines = ["# TYPE layra_db_pool_usage gauge"]
            lines += [f'layra_db_pool_usage{{pool="{k}"}} {v!r}' for k, v in self.pool_usage.items()]
            lines += ["# TYPE layra_worker_pool_usage gauge"]
            lines += [f'layra_worker_pool_usage{{worker="{k}"}} {v!r}' for k, v in self.worker_pool_usage.items()]
            lines += ["# TYPE layra_http_requests_total counter"]
            lines += [f'layra_http_requests_total{{status="{k}"}} {v}' for k, v in self.requests.items()]
            lines += ["# TYPE layra_idle_requests_total counter", f"layra_idle_requests_total {self.idle_requests}"]
        return ("\n".join(lines) + "\n").encode()

    def serve(self) -> ThreadingHTTPServer:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = exporter.exposition() if self.path == "/metrics" else b"ok\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        return httpd


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prometheus_binary() -> str:
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).is_file():
        pytest.fail("no prometheus binary: install it with `apt-get install -y --no-install-recommends "
                    "prometheus` (.ci/run does it before `make test`)", pytrace=False)
    return binary


def poll(fetch, expected, timeout: float = WAIT):
    """fetch() until it returns `expected` (to float rounding) or time is up; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if (value is not None and value == pytest.approx(expected, rel=0, abs=1e-12)) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


@pytest.fixture(scope="module")
def exporter():
    exporter = Exporter()
    httpd = exporter.serve()
    exporter.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield exporter
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def prometheus(exporter, tmp_path_factory):
    binary = prometheus_binary()
    work = tmp_path_factory.mktemp("prometheus")
    target = exporter.url.removeprefix("http://")
    (work / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: layra\n    static_configs:\n      - targets: ['{target}']\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(work / "prometheus.log", "wb")
    process = subprocess.Popen(
        [binary, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, cwd=work)
    try:
        deadline = time.monotonic() + 30
        while prometheus_value(url, 'up{job="layra"}', timeout=1) != 1.0:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Prometheus did not come up and scrape the exporter:\n"
                            f"{(work / 'prometheus.log').read_text()[-3000:]}", pytrace=False)
            time.sleep(0.2)
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as ready:
            assert ready.status == 200
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_a_gauge_query_returns_its_value(prometheus):
    assert prometheus_value(prometheus, 'layra_db_pool_usage{pool="main"}') == 0.42


def test_the_max_is_taken_over_several_series(prometheus):
    assert prometheus_value(prometheus, "layra_worker_pool_usage") == 0.75


def test_a_gauge_change_is_read_once_scraped(prometheus, exporter):
    with exporter.lock:
        exporter.worker_pool_usage["c"] = 0.9
    assert poll(lambda: prometheus_value(prometheus, "layra_worker_pool_usage"), 0.9) == 0.9


def test_an_error_rate_query_returns_the_ratio_once_counters_move(prometheus, exporter):
    query = ('sum(rate(layra_http_requests_total{status=~"5.."}[5s])) '
             '/ sum(rate(layra_http_requests_total[5s]))')
    stop = threading.Event()

    def traffic():  # 3 OK and 1 server error per tick: an error rate of exactly 1/4
        while not stop.wait(0.05):
            with exporter.lock:
                exporter.requests["200"] += 3
                exporter.requests["500"] += 1

    ticker = threading.Thread(target=traffic, daemon=True)
    ticker.start()
    try:
        value = poll(lambda: prometheus_value(prometheus, query), 0.25)
    finally:
        stop.set()
        ticker.join()
    assert value == pytest.approx(0.25, abs=1e-12)


def test_an_empty_result_is_missing(prometheus):
    assert prometheus_value(prometheus, "layra_no_such_metric") is None


def test_a_nan_result_is_missing(prometheus):
    assert prometheus_value(prometheus, "0/0") is None  # a NaN scalar
    # a NaN vector: a ratio of rates of a counter that never moved (once it has two samples)
    assert poll(lambda: prometheus_value(prometheus, "rate(layra_idle_requests_total[5s])"), 0.0) == 0.0
    assert prometheus_value(prometheus, "rate(layra_idle_requests_total[5s]) / rate(layra_idle_requests_total[5s])") is None
    assert prometheus_value(prometheus, "1/0") == math.inf  # +Inf is a value, not a missing sample


def test_a_syntax_error_is_missing(prometheus):
    assert prometheus_value(prometheus, "sum(layra_db_pool_usage") is None


def test_an_unreachable_prometheus_is_missing():
    with socket.socket() as sock:  # bound, not listening: refuses connections
        sock.bind(("127.0.0.1", 0))
        assert prometheus_value(f"http://127.0.0.1:{sock.getsockname()[1]}", "up", timeout=1) is None


def test_http_health_against_the_exporter_is_200_with_its_time(exporter):
    health = http_health(f"{exporter.url}/metrics")
    assert health["status"] == 200
    assert 0 < health["seconds"] < 5


def test_http_health_against_a_closed_port_is_status_0():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        assert http_health(f"http://127.0.0.1:{sock.getsockname()[1]}/", timeout=1)["status"] == 0
