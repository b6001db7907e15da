"""What the benchmark and the chaos run share: child processes, the provider, scratch databases,
and the little HTTP/1.1 request framing of the local servers."""

import fcntl
import http.client
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
            self.popen = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)
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
                tail = "".join(self.log.read_text(errors="replace").splitlines(True)[-30:])
                raise RuntimeError(f"{self.name} did not start (see {self.log}):\n{tail}")
            time.sleep(0.1)
        return self

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
    for child in children:
        child.start()
    for child in children:
        child.wait_ready(timeout)
    return children


def celery_worker(name, app, env, log_dir, concurrency):
    argv = [sys.executable, "-m", "celery", "-A", app, "worker", "--loglevel", "INFO", "--concurrency", str(concurrency),
            "--hostname", f"{name}@%h", "--without-mingle", "--without-gossip"]
    return Child(name, argv, env, log_dir, ready=" ready.")


def dispatch_pump(env, log_dir, name="pump"):
    return Child(name, [sys.executable, "manage.py", "dispatch_pump"], env, log_dir, ready="dispatch pump started")


class Provider:
    """bench/provider.py in its own process: 200 to every POST, each recorded with its Idempotency-Key."""

    def __init__(self, log_dir):
        self.child = Child("provider", [sys.executable, "bench/provider.py"], {**os.environ, "PYTHONUNBUFFERED": "1"},
                           log_dir, ready="listening").start().wait_ready(20)
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


def create_database(pg, name):
    import psycopg

    with psycopg.connect(f"{pg}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def drop_database(pg, name):
    import psycopg

    with psycopg.connect(f"{pg}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def take_request(buffer: bytes):
    """Split one whole HTTP/1.1 request off the front of `buffer`: (first line, headers, body, rest),
    or None while it is incomplete. Headers are lower-cased; bodies are framed by Content-Length."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    lines = buffer[:head_end].decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body_end = head_end + 4 + int(headers.get("content-length") or 0)
    if len(buffer) < body_end:
        return None
    return lines[0], headers, buffer[head_end + 4:body_end], buffer[body_end:]


def release_scratch(pg_url, db_name, redis_urls, drop_db=True):
    """The end of a run: flush its Redis DBs and drop its database, never masking the run's own error."""
    import redis

    for url in redis_urls:
        try:
            redis.Redis.from_url(url).flushdb()
        except Exception as exc:
            print(f"could not flush Redis {url}: {exc}", file=sys.stderr)
    if not drop_db:
        return
    try:
        from django.db import connections

        connections.close_all()
    except Exception:
        pass
    try:
        drop_database(pg_url, db_name)
    except Exception as exc:
        print(f"could not drop database {db_name}: {exc}", file=sys.stderr)


def machine_facts(redis_url):
    """The machine, PostgreSQL's and Redis's versions and the code's commit, for a run's JSON (after django.setup())."""
    import redis
    from django.db import connection

    meminfo = Path("/proc/meminfo").read_text().split()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]

    def git(*argv):
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return {
        "machine": {"nproc": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)), "cpu": cpu,
                    "memory_total_mb": int(meminfo[meminfo.index("MemTotal:") + 1]) // 1024,
                    "platform": platform.platform()},
        "versions": {"python": platform.python_version(), "postgresql": pg_version,
                     "redis_server": redis.Redis.from_url(redis_url).info("server")["redis_version"],
                     "git_commit": git("rev-parse", "HEAD"), "git_dirty": bool(git("status", "--porcelain"))},
    }


def proc_field(pid, name, file="status"):
    """A `kB` field of /proc/PID/status (or smaps_rollup), in bytes; 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def process_tree(pid):
    """pid and all its descendants (a Celery worker's pool, gunicorn's workers)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def run_exclusively(lock_name, body, cleanup) -> bool:
    """Run body() while no other run holds the same lock (two runs would drop each other's database).
    Ctrl-C or a kill stops it through cleanup(), which a second signal cannot cut short, and no child
    process outlives it. False when another run holds the lock or this one was interrupted."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started in the background, where SIGINT is ignored
    lock = open(Path(tempfile.gettempdir()) / f"bench-{lock_name}.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another run holding bench-{lock_name}.lock is in progress", file=sys.stderr)
        return False
    try:
        body()
        return True
    except KeyboardInterrupt:
        print("interrupted; stopping child processes", file=sys.stderr)
        return False
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        Child.stop_all(graceful=False)
        cleanup()


def _interrupt(*_):
    raise KeyboardInterrupt
