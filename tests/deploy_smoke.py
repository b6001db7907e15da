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

import sys
import time
from datetime import datetime
from pathlib import Path

import psycopg
import redis
from standardwebhooks import Webhook

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.deployment import Deployment, DeploymentFailed, instant  # noqa: E402
from tests.servers import ROOT, wait_until  # noqa: E402
from tests.support import ProviderServer  # noqa: E402

PG_SERVER = "postgres://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/11"  # a DB index of its own on the shared server, emptied before and after
DB_NAME = "smoke_scheduler"
SEED_EXAMPLE = {"to": "919988066776", "text": "This is a scheduled message!"}


class Smoke:
    def __init__(self):
        self.provider, self.receiver = ProviderServer().start(), ProviderServer().start()
        self.deployment = Deployment(
            database_url=f"{PG_SERVER}/{DB_NAME}",
            redis_url=REDIS_URL,
            provider_url=self.provider.url,
            log_dir=ROOT / "var" / "smoke",
        )
        self.started = time.monotonic()

    def step(self, text: str):
        print(f"[{time.monotonic() - self.started:5.1f} s] {text}", flush=True)

    def run(self):
        self.fresh_stores()
        self.deployment.manage("check", "--deploy", "--fail-level", "WARNING")
        self.step("manage.py check --deploy --fail-level WARNING: no issues")
        self.step(f"release: {self.deployment.release()}")
        for name in ("web", "worker", "pump"):
            self.step(f"{name}: {self.deployment.start(name).command}")
        self.deployment.wait_ready()
        self.step("/readyz: 200")
        client = self.deployment.create_session("Smoke", webhook_url=self.receiver.url)
        self.step(f"create_session: session {client.session_id}")
        message = self.schedule_seed_example(client)
        self.see_it_sent(client, message)
        self.see_the_webhook(client, message)
        self.check_health()
        self.stop_processes()

    def fresh_stores(self):
        drop_database()
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {DB_NAME}")
        redis.Redis.from_url(REDIS_URL).flushdb()
        self.step(f"scratch database {DB_NAME}, Redis {REDIS_URL} emptied")

    def schedule_seed_example(self, client) -> dict:
        status, answer, _ = client.schedule(**SEED_EXAMPLE, scheduledAt=instant(3))
        expect(status == 201, f"POST answered {status}: {answer}")
        scheduled = answer["scheduled"]
        expect(answer["success"] is True and scheduled["status"] == "pending", f"unexpected answer {answer}")
        expect({k: scheduled[k] for k in SEED_EXAMPLE} == SEED_EXAMPLE, f"fields changed: {scheduled}")
        self.step(f"POST /sessions/…/scheduled: 201, {scheduled['id']} due {scheduled['scheduledAt']}")
        return scheduled

    def see_it_sent(self, client, message: dict):
        received = self.provider.wait_for(message["id"], timeout=20)
        expect(len(received) == 1, f"the provider received {len(received)} requests for {message['id']}")
        expect(
            received[0].body["to"] == SEED_EXAMPLE["to"] and received[0].body["text"] == SEED_EXAMPLE["text"],
            f"the provider received {received[0].body}",
        )
        answer = wait_until(lambda: sent(client, message["id"]), 10, "the API to show it sent")
        lateness = received[0].at - datetime.fromisoformat(message["scheduledAt"]).timestamp()
        self.step(
            f"sent: the provider got it {lateness * 1000:+.0f} ms from its time; "
            f"GET shows sent, provider id {answer['result']['messageId']}"
        )

    def see_the_webhook(self, client, message: dict):
        hooks = self.receiver.webhooks_for(message["id"], timeout=15)
        expect(len(hooks) == 1, f"{len(hooks)} webhooks received for {message['id']}")
        event = Webhook(client.created["webhookSecret"]).verify(hooks[0].raw, hooks[0].headers)
        expect(event["event"] == "message.sent" and event["status"] == "success", f"webhook body {event}")
        expect(
            event["sessionId"] == client.session_id and event["result"]["to"] == "919988066776@s.whatsapp.net",
            f"webhook body {event}",
        )
        self.step(f"webhook {hooks[0].headers['webhook-id']}: message.sent, signature verified by standardwebhooks")

    def check_health(self):
        for path in ("/healthz", "/readyz"):
            status, answer, _ = self.deployment.request("GET", path)
            expect(status == 200, f"{path} answered {status}: {answer}")
        dead = [name for name, process in self.deployment.processes.items() if not process.alive()]
        expect(not dead, f"processes exited: {dead}")
        self.step("/healthz 200, /readyz 200, web, worker and pump up")

    def stop_processes(self):
        for name, process in reversed(self.deployment.processes.items()):
            expect(process.stop() is not None, f"{name} did not stop within 20 s of SIGTERM")
        broken = [name for name, process in self.deployment.processes.items() if "Traceback" in process.output()]
        expect(not broken, f"tracebacks in the logs of {broken}")
        self.step("stopped with SIGTERM; no traceback in any log")

    def clean_up(self):
        self.deployment.stop()
        self.provider.stop()
        self.receiver.stop()
        drop_database()
        redis.Redis.from_url(REDIS_URL).flushdb()


def sent(client, scheduled_id: str) -> dict | None:
    status, answer, _ = client.get(scheduled_id)
    return answer["scheduled"] if status == 200 and answer["scheduled"]["status"] == "sent" else None


def drop_database():
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


class SmokeFailed(Exception):
    pass


def expect(condition: bool, failure: str):
    if not condition:
        raise SmokeFailed(failure)


def main() -> int:
    smoke = Smoke()
    try:
        smoke.run()
    except (SmokeFailed, DeploymentFailed, TimeoutError) as failure:
        print(f"\ndeploy smoke FAILED: {failure}", file=sys.stderr)
        for name, process in smoke.deployment.processes.items():
            print(f"\n--- {name} ({process.log}) ---\n{process.tail()}", file=sys.stderr)
        return 1
    finally:
        smoke.clean_up()
    print(f"deploy smoke passed in {time.monotonic() - smoke.started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
