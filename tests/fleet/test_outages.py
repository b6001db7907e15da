"""Parts we depend on go away: Redis stopped, restarted empty or cutting every connection; PostgreSQL
stopped and started. The service runs as deployed (the Procfile's web, worker and pump, `DEBUG=0`,
production timings) on a PostgreSQL cluster and a Redis of its own, which the tests take away for real.
"""

import time
from types import SimpleNamespace

import pytest
import redis

from ..deployment import Deployment, due_time, instant, sent_once
from ..servers import PostgresServer, RedisServer, postgres_available, wait_until
from ..support import ProviderServer

pytestmark = [
    pytest.mark.dispatch,
    pytest.mark.skipif(not postgres_available(), reason="needs PostgreSQL's server binaries (initdb, pg_ctl)"),
]

RECOVERY_SECONDS = 5  # the most a message that fell due during an outage may wait once the part is back
TO = "919988066776"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    postgres, broker = PostgresServer().start(), RedisServer().start()
    provider, receiver = ProviderServer().start(), ProviderServer().start()
    deployment = Deployment(
        database_url=postgres.url,
        redis_url=broker.url,
        provider_url=provider.url,
        log_dir=tmp_path_factory.mktemp("outages"),
    )
    try:
        deployment.release()
        for name in ("web", "worker", "pump"):
            deployment.start(name)
        deployment.wait_ready()
        yield SimpleNamespace(
            deployment=deployment, postgres=postgres, broker=broker, provider=provider, receiver=receiver
        )
    finally:
        deployment.stop()
        postgres.remove()
        broker.remove()
        provider.stop()
        receiver.stop()


@pytest.fixture
def client(stack):
    """A new session for each test, on a stack that is up; its processes are the first ones (a Procfile
    process that died stays dead), so each test also shows that nothing needed a restart by hand."""
    stack.provider.reset()
    stack.receiver.reset()
    stack.deployment.wait_ready()
    yield stack.deployment.create_session(f"outages {time.time()}", webhook_url=stack.receiver.url)
    assert {name: process.alive() for name, process in stack.deployment.processes.items()} == {
        "web": True,
        "worker": True,
        "pump": True,
    }, "a process died: " + "".join(process.tail() for process in stack.deployment.processes.values())


def test_while_redis_is_down_every_write_answers_as_usual_and_goes_out_once_it_is_back(stack, client):
    due = instant(3)
    omnimessage = {"to": "+37255555555", "time_to_send": due, "messages": [{"channel": "sms", "text": "omni"}]}
    stack.broker.stop()

    created = [client.schedule(to=TO, text=f"during the outage {i}", scheduledAt=due) for i in range(5)]
    cancelled = client.schedule(to=TO, text="cancelled during the outage", scheduledAt=due)
    moved = client.schedule(to=TO, text="moved during the outage", scheduledAt=instant(600))
    changes = [
        client.cancel(cancelled[1]["scheduled"]["id"]),
        client.change(moved[1]["scheduled"]["id"], scheduledAt=due),
    ]
    omni = client.omnimessage(omnimessage)
    bulk = client.omnimessages([omnimessage, {**omnimessage, "messages": [{"channel": "sms", "text": "bulk"}]}])
    omni_cancelled = client.omnimessage(omnimessage)
    omni_cancel = client.cancel_omnimessage(omni_cancelled[1]["omnimessage_id"])

    answers = [*created, cancelled, moved, *changes, omni, bulk, omni_cancelled, omni_cancel]
    assert [status for status, _, _ in answers] == [201] * 7 + [200, 200] + [201, 201, 201, 202]
    ready = stack.deployment.request("GET", "/readyz")
    assert (ready[0], ready[1]["checks"]["broker"]["ok"], ready[1]["checks"]["database"]["ok"]) == (503, False, True)
    assert stack.deployment.request("GET", "/healthz")[:2] == (200, {"status": "ok"})

    time.sleep(max(0.0, due_time(changes[1][1]["scheduled"]) - time.time()) + 1.0)
    assert stack.provider.received == []  # due, but nothing can reach a worker yet
    stack.broker.start()
    back = time.time()

    expected = [answer["scheduled"]["id"] for _, answer, _ in [*created, moved]]
    channel_keys = [answer["messages"][0]["message_id"] for answer in [omni[1], *bulk[1]["messages"]]]
    for key in expected + channel_keys:
        assert sent_once(stack.provider, key, timeout=RECOVERY_SECONDS + 5).at - back < RECOVERY_SECONDS
    assert stack.provider.requests_for(cancelled[1]["scheduled"]["id"]) == []
    assert len(stack.provider.received) == len(expected) + len(channel_keys)
    listed = client.listed()
    assert sorted(message["id"] for message in listed) == sorted(
        [
            *expected,
            cancelled[1]["scheduled"]["id"],
            omni[1]["omnimessage_id"],
            omni_cancelled[1]["omnimessage_id"],
            *(answer["omnimessage_id"] for answer in bulk[1]["messages"]),
        ]
    )  # every row stored once
    for scheduled_id in expected:
        assert len(stack.receiver.webhooks_for(scheduled_id, timeout=10)) == 1  # its message.sent, once


def test_redis_restarted_empty_loses_nothing_that_waited_for_its_time(stack, client):
    answers = [client.schedule(to=TO, text=f"restart {i}", scheduledAt=instant(4))[1]["scheduled"] for i in range(5)]
    time.sleep(1.0)  # handed over: the tasks wait in the worker, for their time
    stack.broker.restart()

    for answer in answers:
        assert sent_once(stack.provider, answer["id"], timeout=10).at - due_time(answer) < 1.0


def test_a_worker_that_loses_its_connection_hands_back_what_it_held(stack, client):
    """A network blip: Redis keeps its data, but the worker's connection breaks and Celery drops the ETA
    tasks it held (Redis would give them back only after the visibility timeout, hours later)."""
    answers = [client.schedule(to=TO, text=f"blip {i}", scheduledAt=instant(4))[1]["scheduled"] for i in range(5)]
    time.sleep(1.0)
    redis.Redis.from_url(stack.broker.url).client_kill_filter(_type="normal", skipme=True)

    for answer in answers:
        assert sent_once(stack.provider, answer["id"], timeout=10).at - due_time(answer) < 1.0


def test_through_a_postgres_restart_the_api_says_try_again_and_nothing_is_lost(stack, client):
    answers = [client.schedule(to=TO, text=f"postgres {i}", scheduledAt=instant(4))[1]["scheduled"] for i in range(3)]
    stack.postgres.stop()

    status, body, headers = client.schedule(to=TO, text="while the database is down", scheduledAt=instant(60))
    assert (status, body["success"], headers.get("Retry-After")) == (503, False, "5")
    assert body["error"].startswith("The database cannot be reached right now")
    ready = stack.deployment.request("GET", "/readyz")
    assert (ready[0], ready[1]["checks"]["database"]["ok"]) == (503, False)
    assert stack.deployment.request("GET", "/healthz")[0] == 200

    time.sleep(max(0.0, due_time(answers[-1]) - time.time()) + 1.0)
    stack.postgres.start()
    back = time.time()

    for answer in answers:
        assert sent_once(stack.provider, answer["id"], timeout=RECOVERY_SECONDS + 5).at - back < RECOVERY_SECONDS
    after = client.schedule(to=TO, text="after the restart", scheduledAt=instant(2))
    assert after[0] == 201
    sent_once(stack.provider, after[1]["scheduled"]["id"], timeout=10)
    wait_until(lambda: stack.deployment.request("GET", "/readyz")[0] == 200, 10, "/readyz to answer 200 again")
