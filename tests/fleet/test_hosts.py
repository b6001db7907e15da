"""Workers on two hosts. Host b (a network namespace joined to this host by a veth pair: tests/hosts.py) runs a
worker that reaches PostgreSQL, the broker and the provider over the virtual network; this host runs web,
pump and a worker. Host b is cut off in the middle of its sends: its leases expire, this host recovers its
messages, nothing is lost, and a message that reaches the provider twice is only resent with its one
idempotency key; when host b rejoins, it changes nothing and sends again. The service runs as deployed (the
Procfile's processes) on servers of its own, with a short lease so the test takes seconds, not minutes."""

import contextlib
import socket
import time
from types import SimpleNamespace

import psycopg
import pytest

from .. import brokers, hosts
from ..deployment import Deployment, instant, sent_once
from ..servers import PostgresServer, RedisServer, TcpRelay, postgres_available, wait_until
from ..support import ProviderServer, Reply

pytestmark = [
    pytest.mark.dispatch,
    pytest.mark.skipif(bool(hosts.unavailable()), reason=hosts.unavailable() or "-"),
    pytest.mark.skipif(not postgres_available(), reason="needs PostgreSQL's server binaries (initdb, pg_ctl)"),
]

TO = "919988066776"
SETTINGS = {
    "DISPATCH_LEASE_SECONDS": "8",  # a host gone mid-send is noticed 8 s after its claim
    "SEND_TIME_LIMIT_SECONDS": "6",
    "TRANSPORT_TIMEOUT_SECONDS": "3",
    "WEBHOOK_TIMEOUT_SECONDS": "3",
    "DISPATCH_STALE_AFTER_SECONDS": "2",  # Redis gives back no task a lost host had reserved: the pump re-hands
    "WORKER_CONCURRENCY": "2",
    # A host cut off inside a transaction holds its row locks until PostgreSQL ends the session (docs/DEPLOYMENT.md)
    "PGOPTIONS": "-c idle_in_transaction_session_timeout=3s",
    "API_RATE_LIMIT": "0",  # the test reads every message back through the API; the limit has tests of its own
}
SLOW_SEND = 1.0  # seconds the provider takes to answer a campaign message: host b is cut off while waiting
REJOIN_SECONDS = 5  # for host b to reconnect (the broker: within a second; PostgreSQL: at its next query)


@pytest.fixture(scope="module", params=["redis", "rabbitmq"])
def fleet(request, tmp_path_factory):
    """Host b and this host's processes, with Redis or RabbitMQ as the broker (Redis is the store either way)."""
    if request.param == "rabbitmq" and brokers.rabbitmq_unavailable():
        pytest.skip(brokers.rabbitmq_unavailable())
    with contextlib.ExitStack() as cleanup:
        host_b = hosts.OtherHost()
        cleanup.callback(host_b.remove)
        host_b.create()
        postgres = PostgresServer(listen=("127.0.0.1", host_b.address), trusted_network=host_b.network)
        cleanup.callback(postgres.remove)
        postgres.start()
        store = RedisServer(bind=("127.0.0.1", host_b.address))
        cleanup.callback(store.remove)
        store.start()
        provider = ProviderServer(host=host_b.address).start()  # both hosts reach it over the network
        cleanup.callback(provider.stop)
        here, there = {}, {"DATABASE_URL": postgres.url_at(host_b.address), "REDIS_URL": store.url_at(host_b.address)}
        if request.param == "rabbitmq":
            rabbitmq = brokers.own_rabbitmq(host_b.namespace)
            cleanup.callback(rabbitmq.delete)
            relay = TcpRelay(rabbitmq.port, host=host_b.address).start()  # RabbitMQ listens on loopback only
            cleanup.callback(relay.stop)
            here["BROKER_URL"], there["BROKER_URL"] = rabbitmq.url, rabbitmq.url_at(host_b.address, relay.port)
        deployment = Deployment(
            database_url=postgres.url,
            redis_url=store.url,
            provider_url=provider.url,
            log_dir=tmp_path_factory.mktemp(f"hosts-{request.param}"),
            **SETTINGS,
            **here,
        )
        cleanup.callback(deployment.stop)
        deployment.release()
        for name in ("web", "worker", "pump"):
            deployment.start(name)
        deployment.start_on(host_b, "worker", **there)
        deployment.wait_ready()
        yield SimpleNamespace(deployment=deployment, host_b=host_b, postgres=postgres, provider=provider)


def test_a_host_cut_off_mid_send_loses_nothing_and_does_no_harm_when_it_rejoins(fleet):
    client = fleet.deployment.create_session("two hosts")
    texts = [f"campaign {i}" for i in range(60)]
    for text in texts:
        fleet.provider.script(text, Reply(200, {"messageId": f"wamid.{text.replace(' ', '-')}"}, delay=SLOW_SEND))
    ids = [
        client.schedule(to=TO, text=text, scheduledAt=instant(3 + i // 5 * 0.1))[1]["scheduled"]["id"]
        for i, text in enumerate(texts)
    ]  # 12 ticks of 5 messages, their tasks shared out between the two hosts' workers

    wait_until(lambda: from_host_b(fleet), 15, "host b to send")
    time.sleep(0.2)  # the rest of its batch is on its way to the provider too
    fleet.host_b.cut()
    time.sleep(0.2)  # a request the provider had read before the cut is recorded by now
    in_flight = {request.headers["Idempotency-Key"] for request in from_host_b(fleet)}
    wait_until(lambda: all_sent(fleet, ids), 40, "every message to be sent")

    sent_by = final_senders(fleet, ids)
    requests = {message_id: fleet.provider.requests_for(message_id) for message_id in ids}
    twice = {message_id for message_id, received in requests.items() if len(received) > 1}
    assert in_flight  # host b was cut off holding sends
    assert twice == in_flight  # what host b had in flight was resent once its lease expired; nothing else twice
    for message_id in twice:
        assert len({request.raw for request in requests[message_id]}) == 1  # the same request, the same key
        assert recovered_lease(fleet, message_id), message_id
    assert {sent_by[message_id] for message_id in in_flight} == {f"worker:{socket.gethostname()}"}  # finished here
    before_rejoin = {message_id: client.get(message_id)[1]["scheduled"] for message_id in ids}

    fleet.host_b.rejoin()
    time.sleep(REJOIN_SECONDS)
    after = [client.schedule(to=TO, text=f"after {i}", scheduledAt=instant(2))[1]["scheduled"] for i in range(10)]
    for message in after:
        sent_once(fleet.provider, message["id"], timeout=10)

    assert {message_id: client.get(message_id)[1]["scheduled"] for message_id in ids} == before_rejoin
    late = [
        request
        for message_id in ids
        for request in fleet.provider.requests_for(message_id)[len(requests[message_id]) :]
    ]
    assert {request.headers["Idempotency-Key"] for request in late} <= in_flight  # only a cut-off send, arriving late
    assert fleet.deployment.processes["worker@host-b"].alive()


def from_host_b(fleet) -> list:
    return [request for request in list(fleet.provider.received) if request.peer == fleet.host_b.peer_address]


def all_sent(fleet, ids: list[str]) -> bool:
    with psycopg.connect(fleet.postgres.url) as connection:
        statuses = connection.execute(
            "SELECT status FROM scheduling_scheduledmessage WHERE id = ANY(%s)", [ids]
        ).fetchall()
    return len(statuses) == len(ids) and {status for (status,) in statuses} == {"sent"}


def final_senders(fleet, ids: list[str]) -> dict[str, str]:
    """Which worker's host recorded each message as sent (`worker:<hostname>`)."""
    with psycopg.connect(fleet.postgres.url) as connection:
        rows = connection.execute(
            "SELECT message_id, actor FROM scheduling_messageevent WHERE message_id = ANY(%s) AND to_status = 'sent'",
            [ids],
        ).fetchall()
    return dict(rows)


def recovered_lease(fleet, message_id: str) -> bool:
    with psycopg.connect(fleet.postgres.url) as connection:
        return bool(
            connection.execute(
                "SELECT 1 FROM scheduling_messageevent WHERE message_id = %s AND actor = 'pump'"
                " AND detail LIKE 'lease expired%%'",
                [message_id],
            ).fetchone()
        )
