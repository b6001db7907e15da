"""Celery entry points: an id in, one service call. Retries live in the database, not the broker."""

import socket

from celery import shared_task

from . import services
from .handover import SEND_BATCH_TASK, SEND_TASK, WEBHOOK_TASK

WORKER = socket.gethostname()


@shared_task(name=SEND_TASK, ignore_result=True)
def send_message(message_id: str, version: int) -> None:
    services.message_dispatch(message_id=message_id, version=version, worker=WORKER)


@shared_task(name=SEND_BATCH_TASK, ignore_result=True)
def send_messages(batch: list[list]) -> None:
    services.message_dispatch_batch(batch=[(message_id, version) for message_id, version in batch], worker=WORKER)


@shared_task(name=WEBHOOK_TASK, ignore_result=True)
def deliver_webhook(delivery_id: str, version: int) -> None:
    services.webhook_deliver(delivery_id=delivery_id, version=version)
