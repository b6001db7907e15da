"""Celery entry points: an id in, one service call. Retries live in the database, not the broker,
except while the database or the Redis store cannot be reached: then the task comes back a moment later."""

import socket
from datetime import datetime

import redis
from celery import shared_task
from celery.signals import task_prerun
from django.db import InterfaceError, OperationalError, close_old_connections

from . import services
from .handover import SEND_BATCH_TASK, SEND_DUE_TASK, SEND_TASK, WEBHOOK_TASK, WEBHOOKS_TASK, tick_start, wait_for

WORKER = socket.gethostname()

# A PostgreSQL restart or failover mid-task, or the Redis store's (a batch's pacing is asked before its claim
# commits): try again within 1, 2, then every 4 seconds (jittered), for as long as it takes. Every task is
# safe to run twice: the guarded claim makes the second run a no-op.
WHILE_THE_DATABASE_IS_AWAY = {
    "autoretry_for": (OperationalError, InterfaceError, redis.ConnectionError, redis.TimeoutError),
    "retry_backoff": 1,
    "retry_backoff_max": 4,
    "retry_jitter": True,
    "max_retries": None,
}


@task_prerun.connect
def replace_broken_database_connections(**_):
    # Celery's Django fixup keeps connections across tasks (CELERY_DB_REUSE_MAX) without looking at
    # them: after a database restart every task would fail on the dead one. Django checks them at the
    # start of each web request; this does the same before each task (CONN_HEALTH_CHECKS applies).
    close_old_connections()


@shared_task(name=SEND_TASK, ignore_result=True, **WHILE_THE_DATABASE_IS_AWAY)
def send_message(message_id: str, version: int, not_before: str | None = None) -> None:
    _wait_for(not_before)
    services.message_dispatch(message_id=message_id, version=version, worker=WORKER)


@shared_task(name=SEND_BATCH_TASK, ignore_result=True, **WHILE_THE_DATABASE_IS_AWAY)
def send_messages(batch: list[list]) -> None:
    services.message_dispatch_batch(batch=[(message_id, version) for message_id, version in batch], worker=WORKER)


@shared_task(name=SEND_DUE_TASK, ignore_result=True, **WHILE_THE_DATABASE_IS_AWAY)
def send_due(until: str) -> None:
    end = datetime.fromisoformat(until)
    wait_for(tick_start(end))  # its tick's start is its time (RabbitMQ may deliver it up to a second early)
    services.messages_send_due(until=end, worker=WORKER)


@shared_task(name=WEBHOOK_TASK, ignore_result=True, **WHILE_THE_DATABASE_IS_AWAY)
def deliver_webhook(delivery_id: str, version: int, not_before: str | None = None) -> None:
    _wait_for(not_before)
    services.webhook_deliver(delivery_id=delivery_id, version=version)


@shared_task(name=WEBHOOKS_TASK, ignore_result=True, **WHILE_THE_DATABASE_IS_AWAY)
def deliver_webhooks(batch: list[list]) -> None:
    services.webhooks_deliver(batch=[(delivery_id, version) for delivery_id, version in batch])


def _wait_for(when: str | None) -> None:
    """A task RabbitMQ delivered before its time (handover.broker_eta) waits for it here."""
    if when:
        wait_for(datetime.fromisoformat(when))
