"""A run's frame: one run per scratch database at a time, stopped cleanly by Ctrl-C or a kill, and the
record of how and on what it ran."""

import fcntl
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from fleet import Child
from product import ROOT


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


def run_record(args):
    """How the run was started, for the top of its JSON: the exact command line, where, with which options."""
    return {
        "command": shlex.join(Path("/proc/self/cmdline").read_text().split("\0")[:-1]),
        "cwd": os.getcwd(),
        "args": vars(args),
        "started_at": datetime.now(UTC).isoformat(),
    }


def machine_facts(redis_url):
    """The machine, PostgreSQL's and Redis's versions and the code's commit, for a run's JSON (after django.setup())."""
    import redis
    from django.db import connection

    meminfo = Path("/proc/meminfo").read_text().split()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]

    def git(*argv):
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return {
        "machine": {
            "nproc": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)),
            "cpu": cpu,
            "memory_total_mb": int(meminfo[meminfo.index("MemTotal:") + 1]) // 1024,
            "platform": platform.platform(),
        },
        "versions": {
            "python": platform.python_version(),
            "postgresql": pg_version,
            "redis_server": redis.Redis.from_url(redis_url).info("server")["redis_version"],
            "git_commit": git("rev-parse", "HEAD"),
            "git_dirty": bool(git("status", "--porcelain")),
        },
    }
