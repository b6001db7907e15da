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
import threading
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
    """`redis-server` on its own port, keeping nothing on disk (as the shared one): a restart empties it.
    `bind`: the addresses it listens on; `options`: more of redis-server's, e.g. ("--replicaof", host, port)."""

    def __init__(self, port: int | None = None, bind: tuple[str, ...] = ("127.0.0.1",), options: tuple[str, ...] = ()):
        self.port = port or free_port()
        self.bind, self.options = bind, options
        self.directory = tempfile.mkdtemp(prefix="redis-throwaway-")  # where a replica keeps what it synced
        self.popen = None

    @property
    def url(self) -> str:
        return self.url_at("127.0.0.1")

    def url_at(self, address: str) -> str:
        return f"redis://{address}:{self.port}/0"

    def start(self):
        argv = ["redis-server", "--port", str(self.port), "--bind", *self.bind, "--dir", self.directory]
        argv += ["--save", "", "--appendonly", "no"]
        if self.bind != ("127.0.0.1",):
            argv += ["--protected-mode", "no"]  # it answers only on loopback otherwise
        self.popen = subprocess.Popen(
            [*argv, *self.options], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        wait_until(lambda: port_open(self.port), 10, f"redis-server on port {self.port}")
        return self

    def stop(self):
        """Gone at once, as a crashed or unreachable broker is: the port then refuses connections."""
        if self.popen and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()

    def remove(self):
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def restart(self):
        self.stop()
        return self.start()


class TcpRelay:
    """Forwards every connection made to (`host`, `port`) on to (`target_host`, `target_port`): a server that
    listens only on loopback (the shared RabbitMQ) reached over another network, or one that a test takes
    away (`stop`: every connection cut, new ones refused) and brings back (`start`) without touching it."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.host, self.port = host, free_port()
        self.listener, self.sockets, self.lock = None, [], threading.Lock()

    def start(self):
        self.listener = socket.create_server((self.host, self.port))
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()
        return self

    def stop(self):
        self.listener.close()
        with self.lock:
            for connection in self.sockets:
                connection.close()
            self.sockets.clear()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._copy, args=(source, sink), daemon=True).start()

    @staticmethod
    def _copy(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class RedisSentinels:
    """A Redis primary, its replica and three sentinels watching them (each `redis-server` on its own port),
    as a Sentinel deployment runs them: kill the primary and the sentinels promote the replica."""

    MASTER_NAME = "scheduler"

    def __init__(self):
        self.primary = RedisServer()
        self.replica = RedisServer(options=("--replicaof", "127.0.0.1", str(self.primary.port)))
        self.directory = Path(tempfile.mkdtemp(prefix="sentinels-"))
        self.ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return ";".join(f"sentinel://127.0.0.1:{port}" for port in self.ports)

    def start(self):
        self.primary.start()
        self.replica.start()
        for port in self.ports:
            config = self.directory / f"sentinel-{port}.conf"  # a sentinel rewrites its file: one each
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
                f"sentinel monitor {self.MASTER_NAME} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {self.MASTER_NAME} 1000\n"
                f"sentinel failover-timeout {self.MASTER_NAME} 10000\n"
            )
            self.sentinels.append(
                subprocess.Popen(
                    ["redis-server", str(config), "--sentinel"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            wait_until(lambda port=port: port_open(port), 10, f"redis-sentinel on port {port}")
        wait_until(self._replica_in_sync, 15, "the replica to sync with the primary")
        return self

    def master_port(self) -> int | None:
        """The port of the master the sentinels name now."""
        answer = _redis_cli(self.ports[0], "SENTINEL", "get-master-addr-by-name", self.MASTER_NAME).split()
        return int(answer[1]) if len(answer) == 2 else None

    def _replica_in_sync(self) -> bool:
        return "master_link_status:up" in _redis_cli(self.replica.port, "INFO", "replication")

    def stop(self):
        for sentinel in self.sentinels:
            sentinel.kill()
            sentinel.wait()
        self.primary.remove()
        self.replica.remove()
        shutil.rmtree(self.directory, ignore_errors=True)


def _redis_cli(port: int, *command: str) -> str:
    done = subprocess.run(["redis-cli", "-p", str(port), *command], capture_output=True, text=True, timeout=10)
    return done.stdout


class PostgresServer:
    """A PostgreSQL cluster of its own (initdb in a scratch directory), so a test may restart it. `listen`:
    the addresses it listens on; `trusted_network`: one more network whose clients it lets in."""

    def __init__(self, port: int | None = None, listen: tuple[str, ...] = ("127.0.0.1",), trusted_network: str = ""):
        self.port = port or free_port()
        self.listen, self.trusted_network = listen, trusted_network
        self.directory = Path(tempfile.mkdtemp(prefix="pg-throwaway-"))
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"

    @property
    def url(self) -> str:
        return self.url_at("127.0.0.1")

    def url_at(self, address: str) -> str:
        return f"postgres://postgres@{address}:{self.port}/postgres"

    def start(self):
        if not self.data.exists():
            self._run(_pg_binary("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
            if self.trusted_network:
                with open(self.data / "pg_hba.conf", "a") as hba:
                    hba.write(f"host all all {self.trusted_network} trust\n")
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
        options = f"-p {self.port} -k {self.directory} -c listen_addresses={','.join(self.listen)} -c fsync=off"
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
    `python`, `gunicorn` and `celery` are meant), in its own process group; on this host, or on `host` (an
    OtherHost of tests/hosts.py)."""

    def __init__(self, name: str, env: dict, log_dir: Path, ready: str, host=None):
        self.name, self.ready, self.host = name, ready, host
        self.command = procfile_commands()[name]
        self.env = env
        self.log = Path(log_dir) / (f"{name}@{host.hostname}.log" if host else f"{name}.log")
        self.popen = None

    def start(self, timeout: float = 60.0):
        argv = self.host.run(self.command) if self.host else ["sh", "-c", self.command]
        with open(self.log, "w") as log:
            self.popen = subprocess.Popen(
                argv,
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
