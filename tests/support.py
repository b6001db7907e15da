"""Real stand-ins for the outside world: a local HTTP provider, and worker/pump processes."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Received:
    path: str
    headers: dict
    body: dict
    at: float  # time.time() on arrival
    raw: str = ""
    peer: str = ""  # the client's address


@dataclass
class Reply:
    status: int = 200
    body: dict | None = None
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


class _ManyAtOnceServer(ThreadingHTTPServer):
    # A worker opens a connection per send in flight; the default backlog of 5 would hold the rest back
    # by the kernel's 1 s SYN retry, which no real provider does.
    request_queue_size = 1024


class ProviderServer:
    """A messaging provider on 127.0.0.1 that records every request.

    Replies are scripted per message text: `script("flaky", Reply(503), Reply(503))` answers the
    first two requests carrying text "flaky" with 503, then the default 200 with a fresh id.
    """

    def __init__(self, port=0, host="127.0.0.1"):
        self.received: list[Received] = []
        self.scripts: dict[str, list[Reply]] = {}
        self.lock = threading.Lock()
        self.server = _ManyAtOnceServer((host, port), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://{self.server.server_address[0]}:{self.server.server_port}/messages"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *_):
        self.stop()

    def reset(self):
        with self.lock:
            self.received.clear()
            self.scripts.clear()

    def script(self, text, *replies):
        with self.lock:
            self.scripts[text] = list(replies)

    def requests_for(self, message_id, header="Idempotency-Key"):
        with self.lock:
            return [r for r in self.received if r.headers.get(header) == message_id]

    def wait_for(self, message_id, count=1, timeout=10.0, header="Idempotency-Key"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = self.requests_for(message_id, header)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        return self.requests_for(message_id, header)

    def webhooks_for(self, scheduled_id, count=1, timeout=10.0):
        """Webhook requests about one message (matched on the body's scheduledId)."""
        deadline = time.time() + timeout
        while True:
            with self.lock:
                found = [r for r in self.received if r.body.get("scheduledId") == scheduled_id]
            if len(found) >= count or time.time() > deadline:
                return found
            time.sleep(0.02)

    def _reply_for(self, body):
        with self.lock:
            text = body.get("text") or body.get("Body") or body.get("scheduledId")
            queue = self.scripts.get(text if isinstance(text, str) else "")
            return queue.pop(0) if queue else Reply(body={"messageId": f"wamid.{uuid.uuid4().hex[:20]}"})

    def _handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                arrived = time.time()
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                    body = dict(parse_qsl(raw))
                else:
                    body = json.loads(raw or "{}")
                with provider.lock:
                    provider.received.append(
                        Received(self.path, dict(self.headers), body, arrived, raw, self.client_address[0])
                    )
                reply = provider._reply_for(body)
                time.sleep(reply.delay)
                payload = json.dumps(reply.body or {}).encode()
                self.send_response(reply.status)
                for name, value in {"Content-Type": "application/json", **reply.headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except BrokenPipeError:
                    pass  # the client gave up waiting (a timeout test)

            def log_message(self, *args):
                pass

        return Handler


class Process:
    """A project process (celery worker or dispatch pump) run as the Procfile runs it."""

    def __init__(self, argv, env, ready_line):
        self.argv, self.env, self.ready_line = argv, env, ready_line
        self.popen = None
        self.lines: list[str] = []

    def start(self, timeout=30.0):
        self.lines = []
        self.popen = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._collect, daemon=True).start()
        deadline = time.time() + timeout
        while not any(self.ready_line in line for line in list(self.lines)):
            if self.popen.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{self.argv} did not start:\n" + "".join(self.lines[-40:]))
            time.sleep(0.05)
        return self

    def _collect(self):
        for line in self.popen.stdout:
            self.lines.append(line)

    def kill(self):
        """SIGKILL the whole process group: what an OOM kill or a lost host does."""
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def stop(self):
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def worker(env, name, concurrency=2):
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "project",
        "worker",
        "--loglevel",
        "INFO",
        "--concurrency",
        str(concurrency),
        "--hostname",
        f"{name}@%h",
        "--without-mingle",
        "--without-gossip",
    ]
    return Process(argv, env, ready_line=" ready.")


def pump(env):
    return Process([sys.executable, "manage.py", "dispatch_pump"], env, ready_line="dispatch pump started")
