"""Throwaway Redis and PostgreSQL servers, and the Procfile's processes, for tests that take a part away.

A test that stops or restarts a service must never touch the machine's shared one: these start their own
on a free port, in a scratch directory, and can be stopped, restarted and flushed at will. Standard library
only, so the deploy smoke test (a venv with requirements.txt alone) can use them too.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:g} s")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class RedisServer:
    """`redis-server` on its own port, keeping nothing on disk (as the shared one): a restart empties it."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.popen = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.popen = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: port_open(self.port), 10, f"redis-server on port {self.port}")
        return self

    def stop(self):
        """Gone at once, as a crashed or unreachable broker is: the port then refuses connections."""
        if self.popen and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()

    def restart(self):
        self.stop()
        return self.start()


class PostgresServer:
    """A PostgreSQL cluster of its own (initdb in a scratch directory), so a test may restart it."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="pg-throwaway-"))
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def start(self):
        if not self.data.exists():
            self._run(_pg_binary("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self._pg_ctl("start")
        return self

    def restart(self):
        """`pg_ctl restart -m fast`: every connection is cut, new ones are refused until it is back."""
        self._pg_ctl("restart")

    def stop(self):
        if self.data.exists():
            self._pg_ctl("stop", check=False)

    def remove(self):
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _pg_ctl(self, action: str, check: bool = True):
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            _pg_binary("pg_ctl"),
            action,
            "-D",
            str(self.data),
            "-m",
            "fast",
            "-w",
            "-t",
            "30",
            "-l",
            str(self.log),
            "-o",
            options,
            check=check,
        )

    def _run(self, *argv, check: bool = True):
        # PostgreSQL refuses to run as root: as root, run it as the postgres user, which owns the directory.
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
            argv = ("runuser", "-u", "postgres", "--", *argv)
        subprocess.run(argv, check=check, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=60)


def _pg_binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None)
    if not found:
        raise RuntimeError(f"{name} not found: install PostgreSQL's server binaries (Debian: postgresql)")
    return str(found)


def postgres_available() -> bool:
    try:
        _pg_binary("initdb")
    except RuntimeError:
        return False
    return shutil.which("runuser") is not None or os.geteuid() != 0


# --- The Procfile's processes ----------------------------------------------------------------------


def procfile_commands(path: Path = ROOT / "Procfile") -> dict[str, str]:
    lines = (line.partition(":") for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
    return {name.strip(): command.strip() for name, _, command in lines}


class ProcfileProcess:
    """One Procfile line run as a platform runs it: `sh -c` with the environment (whose PATH says which
    `python`, `gunicorn` and `celery` are meant), in its own process group."""

    def __init__(self, name: str, env: dict, log_dir: Path, ready: str):
        self.name, self.ready = name, ready
        self.command = procfile_commands()[name]
        self.env = env
        self.log = Path(log_dir) / f"{name}.log"
        self.popen = None

    def start(self, timeout: float = 60.0):
        with open(self.log, "w") as log:
            self.popen = subprocess.Popen(
                ["sh", "-c", self.command],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self._ready_or_dead, timeout, f"{self.name} ({self.command}) to start; see {self.log}")
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")
        return self

    def _ready_or_dead(self) -> bool:
        return self.popen.poll() is not None or self.ready in self.output()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "".join(self.output().splitlines(True)[-lines:])

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM as a platform stops a process; SIGKILL to the group if it does not exit in time."""
        if not self.alive():
            return self.popen.returncode if self.popen else None
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
            return None
