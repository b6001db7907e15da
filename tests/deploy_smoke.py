"""Deploy smoke test: the service as a platform runs it, from requirements.txt alone.

    make smoke    # a fresh venv with `pip install -r requirements.txt`, then this script in it

Run with that venv's Python, so that nothing from the test or bench tools can hide a missing runtime
dependency. Production settings (`DEBUG=0`, a real `SECRET_KEY`, `ALLOWED_HOSTS`, HTTPS ended at a proxy),
real PostgreSQL (a scratch database) and Redis (its own DB index), then:

1. `manage.py check --deploy --fail-level WARNING`;
2. the Procfile's `release`, then `web`, `worker` and `pump` as the Procfile starts them;
3. a session from `create_session`, the seed's example scheduled over HTTP through the proxy's headers,
   seen at a local provider stand-in, `sent` in the API, and its `message.sent` webhook delivered and
   verified with the `standardwebhooks` library;
4. `/healthz` and `/readyz`, every process still up, then stopped with SIGTERM, no traceback in any log.

Exits 1 at the first step that fails, with the logs' tails. Only the standard library and runtime
dependencies are imported here.
"""

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import redis
from standardwebhooks import Webhook

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers import ROOT, ProcfileProcess, free_port, procfile_commands, wait_until  # noqa: E402
from tests.support import ProviderServer  # noqa: E402

PG_SERVER = os.environ.get("SMOKE_PG", "postgres://postgres@127.0.0.1:5432")
REDIS_SERVER = os.environ.get("SMOKE_REDIS", "redis://127.0.0.1:6379")
DB_NAME, REDIS_DB = "smoke_scheduler", 11
LOG_DIR = ROOT / "var" / "smoke"
SEED_EXAMPLE = {"to": "919988066776", "text": "This is a scheduled message!"}
PROXY_HEADERS = {"Host": "localhost", "X-Forwarded-Proto": "https"}  # TLS ended at a proxy in front of web


def production_env(port: int, provider_url: str) -> dict:
    return {
        **{name: value for name, value in os.environ.items() if not name.startswith(("DJANGO_", "PYTEST"))},
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "localhost",
        "DATABASE_URL": f"{PG_SERVER}/{DB_NAME}",
        "REDIS_URL": f"{REDIS_SERVER}/{REDIS_DB}",
        "PORT": str(port),
        "TRANSPORT_URL": provider_url,
        "WEBHOOK_ALLOW_PRIVATE": "1",  # the webhook receiver is on 127.0.0.1
        "PYTHONUNBUFFERED": "1",
    }


class Smoke:
    def __init__(self):
        self.provider, self.receiver = ProviderServer().start(), ProviderServer().start()
        self.port = free_port()
        self.env = production_env(self.port, self.provider.url)
        self.processes: list[ProcfileProcess] = []
        self.started = time.monotonic()

    def step(self, text: str):
        print(f"[{time.monotonic() - self.started:5.1f} s] {text}", flush=True)

    def run(self):
        self.fresh_stores()
        self.manage("check", "--deploy", "--fail-level", "WARNING")
        self.step("manage.py check --deploy: no issues")
        self.release()
        self.start_processes()
        created = json.loads(self.manage("create_session", "Smoke", "--webhook-url", self.receiver.url))
        self.step(f"create_session: session {created['id']}")
        message = self.schedule_seed_example(created)
        self.see_it_sent(created, message)
        self.see_the_webhook(created, message)
        self.check_health()
        self.stop_processes()

    def fresh_stores(self):
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
            connection.execute(f"CREATE DATABASE {DB_NAME}")
        redis.Redis.from_url(self.env["REDIS_URL"]).flushdb()
        self.step(f"scratch database {DB_NAME}, Redis DB {REDIS_DB} emptied")

    def manage(self, *argv) -> str:
        done = subprocess.run([sys.executable, "manage.py", *argv], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=120)
        if done.returncode:
            raise SmokeFailed(f"manage.py {' '.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
        return done.stdout

    def release(self):
        command = procfile_commands()["release"]
        done = subprocess.run(["sh", "-c", command], cwd=ROOT, env=self.processes_env(), capture_output=True,
                              text=True, timeout=300)
        if done.returncode:
            raise SmokeFailed(f"release ({command}) exited {done.returncode}:\n{done.stdout}{done.stderr}")
        self.step(f"release: {command}")

    def processes_env(self) -> dict:
        return {**self.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"}

    def start_processes(self):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        ready = {"web": "Listening at:", "worker": " ready.", "pump": "dispatch pump started"}
        for name, line in ready.items():
            process = ProcfileProcess(name, self.env, LOG_DIR, ready=line)
            self.processes.append(process)
            process.start()
            self.step(f"{name}: {process.command}")
        wait_until(lambda: self.get("/readyz")[0] == 200, 30, "/readyz to answer 200")
        self.step("/readyz: 200")

    def schedule_seed_example(self, created: dict) -> dict:
        due = datetime.now(UTC) + timedelta(seconds=3)
        body = {**SEED_EXAMPLE, "scheduledAt": due.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"}
        status, answer = self.request("POST", f"/sessions/{created['id']}/scheduled", body, key=created["apiKey"])
        expect(status == 201, f"POST answered {status}: {answer}")
        scheduled = answer["scheduled"]
        expect(answer["success"] is True and scheduled["status"] == "pending", f"unexpected answer {answer}")
        expect({k: scheduled[k] for k in SEED_EXAMPLE} == SEED_EXAMPLE, f"fields changed: {scheduled}")
        self.step(f"POST /sessions/…/scheduled: 201, {scheduled['id']} due {scheduled['scheduledAt']}")
        return scheduled

    def see_it_sent(self, created: dict, message: dict):
        received = self.provider.wait_for(message["id"], timeout=20)
        expect(len(received) == 1, f"the provider received {len(received)} requests for {message['id']}")
        expect(received[0].body["to"] == SEED_EXAMPLE["to"] and received[0].body["text"] == SEED_EXAMPLE["text"],
               f"the provider received {received[0].body}")
        path = f"/sessions/{created['id']}/scheduled/{message['id']}"
        answer = wait_until(lambda: self.sent_message(path, created["apiKey"]), 10, "the API to show it sent")
        lateness = received[0].at - datetime.fromisoformat(message["scheduledAt"]).timestamp()
        self.step(f"sent: the provider got it {lateness * 1000:+.0f} ms from its time; "
                  f"GET shows sent, provider id {answer['result']['messageId']}")

    def sent_message(self, path: str, key: str) -> dict | None:
        status, answer = self.request("GET", path, key=key)
        return answer["scheduled"] if status == 200 and answer["scheduled"]["status"] == "sent" else None

    def see_the_webhook(self, created: dict, message: dict):
        hooks = self.receiver.webhooks_for(message["id"], timeout=15)
        expect(len(hooks) == 1, f"{len(hooks)} webhooks received for {message['id']}")
        event = Webhook(created["webhookSecret"]).verify(hooks[0].raw, hooks[0].headers)
        expect(event["event"] == "message.sent" and event["status"] == "success", f"webhook body {event}")
        expect(event["sessionId"] == created["id"] and event["result"]["to"] == "919988066776@s.whatsapp.net",
               f"webhook body {event}")
        self.step(f"webhook {hooks[0].headers['webhook-id']}: message.sent, signature verified by standardwebhooks")

    def check_health(self):
        for path in ("/healthz", "/readyz"):
            status, answer = self.get(path)
            expect(status == 200, f"{path} answered {status}: {answer}")
        dead = [process.name for process in self.processes if not process.alive()]
        expect(not dead, f"processes exited: {dead}")
        self.step("/healthz 200, /readyz 200, web, worker and pump up")

    def stop_processes(self):
        for process in reversed(self.processes):
            code = process.stop()
            expect(code is not None, f"{process.name} did not stop within 20 s of SIGTERM")
        broken = [process.name for process in self.processes if "Traceback" in process.output()]
        expect(not broken, f"tracebacks in the logs of {broken}")
        self.step("stopped with SIGTERM; no traceback in any log")

    def get(self, path: str):
        return self.request("GET", path)

    def request(self, method: str, path: str, body: dict | None = None, key: str = ""):
        headers = {**PROXY_HEADERS, "Content-Type": "application/json", **({"X-API-Key": key} if key else {})}
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")
        except (urllib.error.URLError, ConnectionError):
            return None, {}

    def clean_up(self):
        for process in self.processes:
            process.stop(timeout=5)
        self.provider.stop()
        self.receiver.stop()
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        redis.Redis.from_url(self.env["REDIS_URL"]).flushdb()


class SmokeFailed(Exception):
    pass


def expect(condition: bool, failure: str):
    if not condition:
        raise SmokeFailed(failure)


def main() -> int:
    smoke = Smoke()
    try:
        smoke.run()
    except (SmokeFailed, TimeoutError) as failure:
        print(f"\ndeploy smoke FAILED: {failure}", file=sys.stderr)
        for process in smoke.processes:
            print(f"\n--- {process.name} ({process.log}) ---\n{process.tail()}", file=sys.stderr)
        return 1
    finally:
        smoke.clean_up()
    print(f"deploy smoke passed in {time.monotonic() - smoke.started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
