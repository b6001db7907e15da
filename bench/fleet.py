"""The processes a run starts: each in its own session with its output in a log file, stopped with its
whole process group; the product's Celery workers and pump as the Procfile runs them; the provider."""

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from product import ROOT


class Child:
    """A process in its own session, output to a log file; stopped with its whole process group."""

    running: list["Child"] = []
    pools: list = []  # multiprocessing pools of creator processes

    def __init__(self, name, argv, env, log_dir, ready=None):
        self.name, self.argv, self.env, self.ready = name, argv, env, ready
        self.log = Path(log_dir) / f"{name}.log"
        self.popen = None

    def start(self):
        with open(self.log, "w") as log:
            self.popen = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        Child.running.append(self)
        return self

    @property
    def pid(self):
        return self.popen.pid

    def is_ready(self):
        return self.ready in self.log.read_text(errors="replace")

    def wait_ready(self, timeout=60.0):
        deadline = time.time() + timeout
        while not self.is_ready():
            if self.popen.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{self.name} did not start (see {self.log}):\n{self.tail()}")
            time.sleep(0.1)
        return self

    def tail(self, lines=30):
        return "".join(self.log.read_text(errors="replace").splitlines(True)[-lines:])

    def stop(self, timeout=20.0):
        """SIGTERM to the main process (a Celery worker stops its own pool), then SIGKILL to the group."""
        if self.popen and self.popen.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self):
        if self.popen:
            try:
                os.killpg(self.pid, signal.SIGKILL)  # also reaps pool children left behind
            except ProcessLookupError:
                pass
            self.popen.wait()
        if self in Child.running:
            Child.running.remove(self)

    @classmethod
    def stop_all(cls, graceful=True):
        """Stop every process group started here. graceful=False SIGKILLs at once: nothing they hold
        matters any more, and a quick stop cannot be cut short by a second Ctrl-C."""
        for pool in cls.pools:
            pool.terminate()
        for child in list(reversed(cls.running)):
            child.stop(timeout=10.0) if graceful else child.kill()


def start_all(children, timeout=90.0):
    """Start them all, then wait until each is ready: they start side by side."""
    for child in children:
        child.start()
    for child in children:
        child.wait_ready(timeout)
    return children


def logs_dir(out):
    """<out>/logs, where a run's processes write their logs."""
    log_dir = Path(out) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    return log_dir


def celery_worker(name, app, env, log_dir, concurrency, pool="prefork"):
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        "--loglevel",
        "INFO",
        "--concurrency",
        str(concurrency),
        "--pool",
        pool,
        "--hostname",
        f"{name}@%h",
        "--without-mingle",
        "--without-gossip",
    ]
    return Child(name, argv, env, log_dir, ready=" ready.")


def dispatch_pump(env, log_dir, name="pump"):
    return Child(name, [sys.executable, "manage.py", "dispatch_pump"], env, log_dir, ready="dispatch pump started")


class Provider:
    """bench/provider.py in its own process: 200 to every POST (after `latency_ms`; 429 beyond `rate_cap`
    a second), each accepted one recorded with its Idempotency-Key."""

    def __init__(self, log_dir, latency_ms=0.0, rate_cap=0):
        self.latency_ms, self.rate_cap = latency_ms, rate_cap
        self.child = (
            Child(
                "provider",
                [sys.executable, "bench/provider.py", "--latency-ms", str(latency_ms), "--rate-cap", str(rate_cap)],
                {**os.environ, "PYTHONUNBUFFERED": "1"},
                log_dir,
                ready="listening",
            )
            .start()
            .wait_ready(20)
        )
        self.port = int(self.child.log.read_text().split()[1])
        self.url = f"http://127.0.0.1:{self.port}/messages"

    def _get(self, path):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", path)
            return json.loads(connection.getresponse().read())
        finally:
            connection.close()

    def count(self):
        return self._get("/_stats")["count"]

    def refused(self):
        """POSTs answered 429 (over the rate cap) so far."""
        return self._get("/_stats")["refused"]

    def records(self, start=0):
        return self._get(f"/_records?from={start}")

    def wait_for(self, mark, expected, last_due, stall=30.0, cap=900.0):
        """Wait until `expected` requests arrived after index `mark`; give up once nothing has
        arrived for `stall` seconds after the last due time (the rest are lost), or after `cap`."""
        last, last_change, give_up = -1, time.time(), time.time() + cap
        while time.time() < give_up:
            got = self.count() - mark
            if got >= expected:
                return
            if got != last:
                last, last_change = got, time.time()
            elif time.time() > max(last_due, last_change) + stall:
                return
            time.sleep(0.25)

    def deliveries(self, mark, keys):
        """Arrival times per key, for the keys of one phase."""
        arrivals = {}
        for key, arrived in self.records(mark):
            if key in keys:
                arrivals.setdefault(key, []).append(arrived)
        return arrivals
