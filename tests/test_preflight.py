"""`make test` on a machine where PostgreSQL or Redis is not listening: one clear message, at once."""

import os
import subprocess
import sys
import time

from .servers import ROOT, free_port


def test_without_postgres_or_redis_the_suite_stops_at_once_saying_what_to_start():
    closed = free_port()  # nothing listens there
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{closed}/postgres",
        "REDIS_URL": f"redis://127.0.0.1:{closed}/15",
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/api/test_auth.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 3
    assert time.monotonic() - started < 30
    assert f"PostgreSQL at 127.0.0.1:{closed} cannot be used: connection failed" in done.stderr
    assert f"Redis at redis://127.0.0.1:{closed}/15 cannot be used" in done.stderr
    assert "make test needs PostgreSQL (user postgres, trust auth) and Redis. Start them" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "passed" not in done.stdout and "error" not in done.stdout.lower()
