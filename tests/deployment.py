"""The service as a platform runs it: the Procfile's processes with production settings, and a client
that talks to it over HTTP through a TLS-ending proxy's headers.

Used by the deploy smoke test (a venv with requirements.txt alone, so standard library only here) and by
the outage tests, which take its PostgreSQL or Redis away underneath it.
"""

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .servers import ROOT, ProcfileProcess, free_port, procfile_commands, wait_until

# What a process inherits from the machine; everything else is the deployment's own configuration
# (so nothing of the test settings' shortened timings leaks in).
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
READY_LINES = {"web": "Listening at:", "worker": " ready.", "pump": "dispatch pump started"}
PROXY_HEADERS = {"Host": "localhost", "X-Forwarded-Proto": "https"}  # TLS ended at a proxy in front of web


class Deployment:
    def __init__(self, *, database_url: str, redis_url: str, provider_url: str, log_dir: Path, **settings: str):
        self.port = free_port()
        self.log_dir = Path(log_dir)
        self.env = {
            **{name: os.environ[name] for name in INHERITED if name in os.environ},
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "localhost",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "PORT": str(self.port),
            "TRANSPORT_URL": provider_url,
            "WEBHOOK_ALLOW_PRIVATE": "1",  # the webhook receivers are on 127.0.0.1
            "PYTHONUNBUFFERED": "1",
            **settings,
        }
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"
        self.processes: dict[str, ProcfileProcess] = {}

    def manage(self, *argv: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *argv], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120
        )
        if done.returncode:
            raise DeploymentFailed(f"manage.py {' '.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
        return done.stdout

    def release(self) -> str:
        command = procfile_commands()["release"]
        done = subprocess.run(
            ["sh", "-c", command], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300
        )
        if done.returncode:
            raise DeploymentFailed(f"release ({command}) exited {done.returncode}:\n{done.stdout}{done.stderr}")
        return command

    def start(self, name: str) -> ProcfileProcess:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        process = ProcfileProcess(name, self.env, self.log_dir, ready=READY_LINES[name])
        self.processes[name] = process.start()
        return process

    def start_on(self, host, name: str, **settings: str) -> ProcfileProcess:
        """`name` on another host (tests/hosts.py), with `settings` over the deployment's own (the addresses
        it reaches the servers at, from there)."""
        process = ProcfileProcess(name, {**self.env, **settings}, self.log_dir, ready=READY_LINES[name], host=host)
        self.processes[f"{name}@{host.hostname}"] = process.start()
        return process

    def wait_ready(self, timeout: float = 30.0):
        wait_until(lambda: self.request("GET", "/readyz")[0] == 200, timeout, "/readyz to answer 200")

    def stop(self):
        for process in reversed(self.processes.values()):
            process.stop(timeout=10)

    def create_session(self, name: str, webhook_url: str = "") -> "Client":
        created = json.loads(
            self.manage("create_session", name, *(["--webhook-url", webhook_url] if webhook_url else []))
        )
        return Client(self, created)

    def request(self, method: str, path: str, body=None, headers: dict | None = None):
        """(status, JSON body); status None when nothing answered."""
        headers = {**PROXY_HEADERS, "Content-Type": "application/json", **(headers or {})}
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return response.status, _json(response.read()), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, _json(error.read()), dict(error.headers)
        except (urllib.error.URLError, ConnectionError):
            return None, {}, {}


def _json(raw: bytes):
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        return {"unparsed": raw[:500].decode(errors="replace")}


class Client:
    """A session's client of both APIs: the session API with its key, the Messente API with basic auth."""

    def __init__(self, deployment: Deployment, created: dict):
        self.deployment, self.created = deployment, created
        self.session_id = created["id"]
        self.key_headers = {"X-API-Key": created["apiKey"]}
        credentials = f"{created['apiUsername']}:{created['apiPassword']}".encode()
        self.basic_headers = {"Authorization": "Basic " + b64encode(credentials).decode()}

    def schedule(self, **body):
        return self.deployment.request("POST", f"/sessions/{self.session_id}/scheduled", body, self.key_headers)

    def get(self, scheduled_id: str):
        return self.deployment.request(
            "GET", f"/sessions/{self.session_id}/scheduled/{scheduled_id}", None, self.key_headers
        )

    def change(self, scheduled_id: str, **body):
        return self.deployment.request(
            "PATCH", f"/sessions/{self.session_id}/scheduled/{scheduled_id}", body, self.key_headers
        )

    def cancel(self, scheduled_id: str):
        return self.deployment.request(
            "DELETE", f"/sessions/{self.session_id}/scheduled/{scheduled_id}", None, self.key_headers
        )

    def listed(self) -> list[dict]:
        status, answer, _ = self.deployment.request(
            "GET", f"/sessions/{self.session_id}/scheduled?limit=500", None, self.key_headers
        )
        assert status == 200, answer
        return answer["scheduled"]

    def omnimessage(self, body: dict):
        return self.deployment.request("POST", "/v1/omnimessage", body, self.basic_headers)

    def omnimessages(self, bodies: list[dict]):
        return self.deployment.request("POST", "/v1/omnimessages", {"messages": bodies}, self.basic_headers)

    def cancel_omnimessage(self, omnimessage_id: str):
        return self.deployment.request("DELETE", f"/v1/omnimessage/{omnimessage_id}", None, self.basic_headers)


class DeploymentFailed(Exception):
    pass


def instant(seconds_from_now: float) -> str:
    """An ISO 8601 time as a client writes it."""
    return (datetime.now(UTC) + timedelta(seconds=seconds_from_now)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def due_time(answer: dict) -> float:
    """A scheduled message's time, from the API's answer (Unix seconds)."""
    return datetime.fromisoformat(answer["scheduledAt"]).timestamp()


def sent_once(provider, key: str, timeout: float):
    """The one request the provider got for `key` (waiting up to `timeout`), or the failure."""
    provider.wait_for(key, timeout=timeout)
    time.sleep(0.3)  # a second copy, if one were coming, would be right behind
    received = provider.requests_for(key)
    assert len(received) == 1, f"{key}: {len(received)} requests at the provider"
    return received[0]
