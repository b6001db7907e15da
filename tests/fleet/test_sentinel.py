"""Redis Sentinel: the broker and the shared store on a primary with a replica, watched by three sentinels.
The primary is killed while messages are waiting, falling due and being written; the sentinels promote the
replica, and every message goes out once, within seconds of the new primary being named. The service runs
as deployed (the Procfile's web, worker and pump, production settings) on servers of its own."""

import time
from types import SimpleNamespace

import pytest

from ..deployment import Deployment, due_time, instant, sent_once
from ..servers import PostgresServer, RedisSentinels, postgres_available, wait_until
from ..support import ProviderServer

pytestmark = [
    pytest.mark.dispatch,
    pytest.mark.skipif(not postgres_available(), reason="needs PostgreSQL's server binaries (initdb, pg_ctl)"),
]

RECOVERY_SECONDS = 5  # the most a message due before the new primary was named may wait after it
TO = "919988066776"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    postgres, sentinels, provider = PostgresServer().start(), RedisSentinels().start(), ProviderServer().start()
    deployment = Deployment(
        database_url=postgres.url,
        redis_url=sentinels.url,
        provider_url=provider.url,
        log_dir=tmp_path_factory.mktemp("sentinel"),
        SENTINEL_MASTER_NAME=RedisSentinels.MASTER_NAME,
    )
    try:
        deployment.release()
        for name in ("web", "worker", "pump"):
            deployment.start(name)
        deployment.wait_ready()
        yield SimpleNamespace(deployment=deployment, sentinels=sentinels, provider=provider)
    finally:
        deployment.stop()
        postgres.remove()
        sentinels.stop()
        provider.stop()


def test_a_failover_mid_flight_loses_nothing_and_sends_nothing_twice(stack):
    client = stack.deployment.create_session("sentinel")
    waiting = [client.schedule(to=TO, text=f"waiting {i}", scheduledAt=instant(2 + i * 0.2)) for i in range(25)]
    time.sleep(1.0)  # handed over: their tasks wait in the worker, the first fall due in a second

    stack.sentinels.primary.stop()  # gone at once; the sentinels see it down after a second, then fail over
    written = [client.schedule(to=TO, text=f"during {i}", scheduledAt=instant(1)) for i in range(5)]
    wait_until(lambda: stack.sentinels.master_port() == stack.sentinels.replica.port, 30, "the replica's promotion")
    promoted = time.time()
    after = [client.schedule(to=TO, text=f"after {i}", scheduledAt=instant(1)) for i in range(5)]

    answers = [*waiting, *written, *after]
    assert [status for status, _, _ in answers] == [201] * len(answers)  # no write failed over the failover
    for _, answer, _ in answers:
        message = answer["scheduled"]
        sent = sent_once(stack.provider, message["id"], timeout=RECOVERY_SECONDS + 10)
        assert sent.at - max(due_time(message), promoted) < RECOVERY_SECONDS, message["text"]
    assert len(stack.provider.received) == len(answers)
    assert {name: process.alive() for name, process in stack.deployment.processes.items()} == dict.fromkeys(
        ("web", "worker", "pump"), True
    )
