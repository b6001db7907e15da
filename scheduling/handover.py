"""The one place that talks to Celery: work is handed over by task name, so services never
import tasks (and tasks, which import services, close no circle)."""

import logging

from celery import current_app
from kombu.exceptions import ChannelError

logger = logging.getLogger(__name__)

SEND_TASK = "scheduling.send_message"
SEND_BATCH_TASK = "scheduling.send_messages"
WEBHOOK_TASK = "scheduling.deliver_webhook"


def send_task_id(message_id: str, version: int) -> str:
    # Deterministic: every hand-over of one version shares an id, so one revoke reaches them all.
    return f"send-{message_id}-v{version}"


def enqueue_send(message_id: str, version: int, eta) -> None:
    current_app.send_task(SEND_TASK, args=[message_id, version], eta=eta, task_id=send_task_id(message_id, version))


def enqueue_send_batch(batch: list[tuple[str, int]], eta) -> None:
    """Several messages due at `eta`, in one task. Its id is not recorded: a cancel's revoke of the
    message's own task id misses it, and the claim, as always, is what skips a cancelled message."""
    first_id, first_version = batch[0]
    current_app.send_task(SEND_BATCH_TASK, args=[[list(pair) for pair in batch]], eta=eta,
                          task_id=f"batch-{first_id}-v{first_version}-{len(batch)}")


def enqueue_webhook(delivery_id: str, version: int, eta=None) -> None:
    current_app.send_task(WEBHOOK_TASK, args=[delivery_id, version], eta=eta)


def broker_backlog() -> int | None:
    """Tasks waiting in the broker's default queue (None if it cannot be asked)."""
    try:
        with current_app.connection_for_read() as connection:
            queue = current_app.conf.task_default_queue
            return connection.default_channel.queue_declare(queue=queue, passive=True).message_count
    except ChannelError:
        return 0  # no such queue (never declared, or the broker was flushed): nothing waits in it
    except Exception:
        logger.warning("could not read the broker's queue length", exc_info=True)
        return None


def revoke(task_id: str) -> None:
    """Best effort: frees the worker's ETA slot. The guarded claim is what makes a stale task a no-op."""
    if not task_id:
        return
    try:
        current_app.control.revoke(task_id)
    except Exception:
        logger.warning("revoke of task %s could not be broadcast; the task will be a no-op", task_id, exc_info=True)
