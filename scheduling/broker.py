"""What the broker holds, and how the pump learns that it may have lost it (docs/ARCHITECTURE.md).

A marker lives with the broker's data while everything handed over to it is still there: a key in the
broker's Redis database, or a queue of its own in RabbitMQ's virtual host. A broker that lost its data
lost the marker with it, and the pump then hands over again whatever it handed over before.

- Redis: a flush, a restart without persistence, a Sentinel failover to a replica that missed the latest
  writes. A worker that reconnects also removes the marker (WorkerReconnected): Celery drops the ETA tasks
  a consumer held when its connection broke, and Redis would give them back only after the visibility
  timeout, hours later.
- RabbitMQ: durable quorum queues keep their messages across a broker restart, and what a consumer had
  not acknowledged goes back to the queue the moment its connection drops, for another worker. Neither a
  restart nor a reconnect loses a task, so a reconnect leaves the marker alone; what removes it is a
  broker that lost its data (a node replaced without its disk, the virtual host deleted and made again).
"""

import logging
import uuid
from functools import cache

import redis
from celery import bootsteps, current_app
from django.conf import settings
from kombu import Queue
from kombu.transport.native_delayed_delivery import (
    bind_queue_to_native_delayed_delivery_exchange,
    declare_native_delayed_delivery_exchanges_and_queues,
)

from . import store

logger = logging.getLogger(__name__)

HANDOVERS_KEPT = "scheduling:handovers-kept"  # the key (Redis) or the queue (RabbitMQ)


def lost_work() -> bool | None:
    """True when the hand-overs made so far may be gone from the broker (the caller hands them over
    again, then calls `keeps_work`); None when the broker cannot be reached."""
    if settings.BROKER_KIND == "amqp":
        exists = _on_channel(_marker_queue_exists, "ask RabbitMQ whether it kept the hand-overs")
        return None if exists is None else not exists
    client = _broker_redis()
    if client is None:
        return False  # the zero-configuration file broker: nothing flushes it behind our back
    try:
        return not client.exists(HANDOVERS_KEPT)
    except redis.RedisError:
        return None


def keeps_work() -> None:
    """From now on the broker has everything handed over: set the marker. On RabbitMQ, first make sure the
    queues and exchanges of delayed delivery are there (a broker that lost its data lost them too, and
    until a worker starts again a delayed task would be routed nowhere)."""
    if settings.BROKER_KIND == "amqp":
        _declare_delayed_delivery_and_marker()
        return
    client = _broker_redis()
    if client is not None:
        client.set(HANDOVERS_KEPT, uuid.uuid4().hex)


def backlog() -> int | None:
    """Tasks waiting in the broker's default queue, ready to run (None if it cannot be asked)."""

    def count(connection, channel) -> int:
        try:
            return channel.queue_declare(queue=current_app.conf.task_default_queue, passive=True).message_count
        except connection.channel_errors:
            return 0  # no such queue (never declared, or the broker was flushed): nothing waits in it

    return _on_channel(count, "read the broker's queue length")


class WorkerReconnected(bootsteps.StartStopStep):
    """A consumer bootstep, started again every time the worker reconnects to the broker. On Redis, the
    ETA tasks the consumer held are gone with its connection, so a reconnect removes the marker and the
    pump hands that work over again within a tick. RabbitMQ gives them back by itself."""

    requires = {"celery.worker.consumer.connection:Connection"}

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self.connected_before = False

    def start(self, parent):
        if self.connected_before and settings.BROKER_KIND == "redis":
            logger.warning(
                "reconnected to the broker: the ETA tasks held before are dropped; asking the pump to"
                " hand them over again"
            )
            _forget_handovers()
        self.connected_before = True


def _forget_handovers() -> None:
    try:
        _broker_redis().delete(HANDOVERS_KEPT)
    except redis.RedisError:
        logger.warning("could not reach Redis to ask for a re-hand; the stale-after rule will", exc_info=True)


@cache
def _broker_redis():
    """The broker's own Redis database (not the store's: the marker must go with the tasks)."""
    if settings.BROKER_KIND != "redis":
        return None
    return store.connect(settings.BROKER_URL, master_name=settings.BROKER_SENTINEL_MASTER_NAME, timeout=2)


def _on_channel(use, what: str):
    """`use(connection, channel)` on a channel of its own (a failed passive declare closes it) over a pooled
    broker connection; None, logged, when the broker cannot be reached."""
    try:
        with current_app.pool.acquire(block=True, timeout=5) as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
            with connection.channel() as channel:
                return use(connection, channel)
    except Exception:
        logger.warning("could not %s", what, exc_info=True)
        return None


# --- RabbitMQ ---------------------------------------------------------------------------------------------


def _marker_queue_exists(connection, channel) -> bool:
    try:
        channel.queue_declare(queue=HANDOVERS_KEPT, passive=True)
    except connection.channel_errors:
        return False
    return True


def _declare_delayed_delivery_and_marker() -> None:
    """What Celery's DelayedDelivery bootstep declares when a worker starts, and the marker queue. Kombu's
    helpers open channels they leave open: a connection of its own, closed afterwards, takes them along."""
    with current_app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=2)
        declare_native_delayed_delivery_exchanges_and_queues(connection, settings.CELERY_TASK_DEFAULT_QUEUE_TYPE)
        for queue in current_app.amqp.queues.values():
            queue.bind(connection.default_channel).declare()
            bind_queue_to_native_delayed_delivery_exchange(connection, queue)
        marker = Queue(HANDOVERS_KEPT, durable=True, queue_arguments={"x-queue-type": "quorum"})
        marker.bind(connection.default_channel).declare()
