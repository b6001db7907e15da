"""What RabbitMQ does differently from Redis, and what the service does about it (scheduling/broker.py): a
worker whose connection drops gets the tasks it held back from RabbitMQ itself, with nothing handed over
again; a RabbitMQ that lost its data (its virtual host wiped) has everything handed over again before it
falls due; while RabbitMQ cannot be reached, writes answer as usual and go out once it is back.

The first two run in the RabbitMQ pass of `make test`, on its broker; the last on a deployment of its own,
reaching RabbitMQ through a relay the test cuts."""

import time
from types import SimpleNamespace

import pytest

from scheduling import handover
from scheduling.models import MessageEvent, ScheduledMessage
from scheduling.services.handovers import tick_end

from .. import brokers
from ..deployment import Deployment, due_time, instant, sent_once
from ..factories import in_seconds, schedule_via_services
from ..servers import PostgresServer, RedisServer, TcpRelay, postgres_available, wait_until
from ..support import ProviderServer

TO = "919988066776"
RE_HANDED = "the broker may have lost"  # the start of the history line of the pump's re-hand


def on_rabbitmq(broker):
    if broker.kind != "amqp":
        pytest.skip("runs in the RabbitMQ pass of make test (TEST_RABBITMQ_URL)")


@pytest.mark.rabbitmq
def test_a_worker_whose_connection_drops_gets_what_it_held_back_from_rabbitmq(dispatch, provider, new_session, broker):
    on_rabbitmq(broker)
    due = in_seconds(4.9)  # RabbitMQ delays it 4 s; the worker then holds it for the last 0.9 s
    messages = [schedule_via_services(new_session.session, due, text=f"held {i}") for i in range(5)]
    tick = handover.due_task_id(tick_end(due))
    wait_until(lambda: any(tick in line and "received" in line for line in dispatch.worker.lines), 6, "the task")

    broker.ctl("close_all_connections", "-p", broker.vhost, "a network blip")
    assert time.time() < due.timestamp(), "the connections closed too late: the task had already run"

    for message in messages:
        [received] = provider.wait_for(message.pk, timeout=10)
        assert 0 <= received.at - due.timestamp() < 2.0  # redelivered, not left to the 2 s stale rule
    time.sleep(0.5)
    assert [len(provider.requests_for(message.pk)) for message in messages] == [1] * 5
    assert not MessageEvent.objects.filter(message__in=messages, detail__startswith=RE_HANDED).exists()


@pytest.mark.rabbitmq
def test_a_rabbitmq_that_lost_its_data_gets_everything_handed_over_again(dispatch, provider, new_session, broker):
    on_rabbitmq(broker)
    due = in_seconds(2.9)  # inside the 3 s test horizon: handed over at once, waiting in delayed delivery
    messages = [schedule_via_services(new_session.session, due, text=f"wiped {i}") for i in range(5)]
    assert ScheduledMessage.objects.filter(pk__in=[m.pk for m in messages], handed_over_at=None).count() == 0

    broker.flush()  # the virtual host deleted and made again: every queue, exchange and task gone
    back = time.time()

    for message in messages:
        [received] = provider.wait_for(message.pk, timeout=10)
        assert received.at - max(due.timestamp(), back) < 2.0
    time.sleep(0.5)
    assert [len(provider.requests_for(message.pk)) for message in messages] == [1] * 5
    re_handed = ScheduledMessage.objects.filter(pk__in=[m.pk for m in messages], events__detail__startswith=RE_HANDED)
    assert re_handed.distinct().count() == 5  # by the pump, which found the marker queue gone


# --- RabbitMQ unreachable, on a deployment of its own -----------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if brokers.rabbitmq_unavailable() or not postgres_available():
        pytest.skip(brokers.rabbitmq_unavailable() or "needs PostgreSQL's server binaries (initdb, pg_ctl)")
    rabbitmq = brokers.own_rabbitmq(f"outage-{time.time_ns()}")
    relay = TcpRelay(rabbitmq.port).start()
    postgres, store, provider = PostgresServer().start(), RedisServer().start(), ProviderServer().start()
    deployment = Deployment(
        database_url=postgres.url,
        redis_url=store.url,
        provider_url=provider.url,
        log_dir=tmp_path_factory.mktemp("rabbitmq"),
        BROKER_URL=rabbitmq.url_at("127.0.0.1", relay.port),
    )
    try:
        deployment.release()
        for name in ("web", "worker", "pump"):
            deployment.start(name)
        deployment.wait_ready()
        yield SimpleNamespace(deployment=deployment, relay=relay, provider=provider)
    finally:
        deployment.stop()
        relay.stop()
        rabbitmq.delete()
        postgres.remove()
        store.remove()
        provider.stop()


def test_while_rabbitmq_is_unreachable_writes_answer_as_usual_and_go_out_once_it_is_back(stack):
    client = stack.deployment.create_session("rabbitmq outage")
    stack.relay.stop()  # every connection cut, new ones refused

    answers = [client.schedule(to=TO, text=f"during the outage {i}", scheduledAt=instant(2)) for i in range(5)]
    assert [status for status, _, _ in answers] == [201] * 5
    ready = stack.deployment.request("GET", "/readyz")
    assert (ready[0], ready[1]["checks"]["broker"]["ok"]) == (503, False)
    time.sleep(max(0.0, max(due_time(answer["scheduled"]) for _, answer, _ in answers) - time.time()) + 1.0)
    assert stack.provider.received == []

    stack.relay.start()
    back = time.time()
    for _, answer, _ in answers:
        assert sent_once(stack.provider, answer["scheduled"]["id"], timeout=15).at - back < 5
    wait_until(lambda: stack.deployment.request("GET", "/readyz")[0] == 200, 10, "/readyz to answer 200 again")
