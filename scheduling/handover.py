"""The one place that talks to the broker: work is handed over by task name, so services never
import tasks (and tasks, which import services, close no circle).

The database is the source of truth, so a broker that cannot be reached never fails a write: hand-overs
run after the write commits (`after_commit`), and one that fails is logged and undone (the row goes back
to "not handed over"), so the pump hands it over as soon as the broker answers again. The pump also
learns here when what the broker held may be gone (`broker_lost_work`): a new or flushed Redis, or a
worker that lost its connection and, with it, the ETA tasks it was holding.
"""

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from functools import cache

import redis
from celery import bootsteps, current_app
from django.conf import settings
from django.db import transaction
from kombu.exceptions import ChannelError
from kombu.exceptions import OperationalError as KombuOperationalError

logger = logging.getLogger(__name__)

SEND_TASK = "scheduling.send_message"
SEND_BATCH_TASK = "scheduling.send_messages"  # made by earlier versions; still run, so none is lost in an upgrade
SEND_DUE_TASK = "scheduling.send_due"
WEBHOOK_TASK = "scheduling.deliver_webhook"
WEBHOOKS_TASK = "scheduling.deliver_webhooks"


def send_task_id(message_id: str, version: int) -> str:
    return f"send-{message_id}-v{version}"


def enqueue_send(message_id: str, version: int, eta) -> None:
    """One message, one task: an omnimessage's next channel, or a message for which a tick is not wanted."""
    current_app.send_task(SEND_TASK, args=[message_id, version], eta=eta, task_id=send_task_id(message_id, version))


def due_task_id(until: datetime) -> str:
    """What a row handed over for the tick ending at `until` records as its task: the tick, not one task
    (a tick's work may be shared by several tasks, one handing the rest to the next)."""
    return f"due-{round(until.timestamp() * 1000)}"


def enqueue_send_due(until: datetime, *, shared: bool) -> None:
    """The task of the tick that ends at `until`: it starts at the tick's start and sends what is due by
    `until`, each message at its own time. `shared`: hand-overs for the same tick share one task (the first
    made enqueues it, in Redis with SET NX), so that a campaign created message by message is still sent in
    batches; the pump and a task that hands on its rest pass shared=False."""
    if shared and not _first_for_tick(until):
        return
    try:
        current_app.send_task(
            SEND_DUE_TASK,
            args=[until.isoformat()],
            eta=until - settings.DISPATCH_TICK,
            task_id=f"{due_task_id(until)}-{uuid.uuid4().hex[:12]}",
        )
    except Exception:
        if shared:  # the tick has no task after all: the next hand-over for it must make one
            _forget_tick(until)
        raise


def _tick_key(until: datetime) -> str:
    return f"scheduling:tick:{due_task_id(until)}"


def _first_for_tick(until: datetime) -> bool:
    """True for the first hand-over of this tick. The key goes with the broker's data: a flushed or new
    Redis loses both the key and the task, and the pump hands the rows over again."""
    client = _broker_redis()
    if client is None:
        return True  # the file broker: a task per hand-over, still safe (the claim decides)
    expires_ms = max(1, round((until.timestamp() - time.time()) * 1000)) + TICK_KEY_KEPT_MS
    return bool(client.set(_tick_key(until), 1, nx=True, px=expires_ms))


def _forget_tick(until: datetime) -> None:
    client = _broker_redis()
    if client is None:
        return
    try:
        client.delete(_tick_key(until))
    except redis.RedisError:
        pass  # Redis is away too: with it the key, most likely; the pump's stale rule covers the rest


TICK_KEY_KEPT_MS = 60_000  # past its tick: a late hand-over for a tick already run must not count on that task


def enqueue_webhook(delivery_id: str, version: int, eta=None) -> None:
    current_app.send_task(WEBHOOK_TASK, args=[delivery_id, version], eta=eta)


def enqueue_webhooks(batch: list[tuple[str, int]]) -> None:
    """The first attempts of the webhooks a batch of sends wrote, in one task that posts them side by side."""
    current_app.send_task(WEBHOOKS_TASK, args=[[list(pair) for pair in batch]])


# --- After the write commits, never failing it ---------------------------------------------------------

# After a hand-over fails, this process skips the broker for a moment instead of making every following
# write wait out the connection attempts (about half a second each); the pump hands those over later.
UNREACHABLE_PAUSE_SECONDS = 2.0
_unreachable_until = 0.0
AFTERWARDS = {True: "the pump makes it once the broker is back", False: "it was a courtesy, not needed for correctness"}


def after_commit(hand_over: Callable, *args, undo: Callable[[], None] | None = None) -> None:
    """Run `hand_over(*args)` once the current transaction commits. If the broker cannot take it, log
    it, call `undo` (which marks the row as not handed over, for the pump) and carry on: the write
    that was committed stands, and the client's answer is the same as with the broker up."""

    def hand_over_after_commit():
        global _unreachable_until
        if time.monotonic() < _unreachable_until:  # already said: the failure that started the pause was logged
            _undo_safely(undo)
            return
        try:
            hand_over(*args)
        except BROKER_ERRORS as error:
            _unreachable_until = time.monotonic() + UNREACHABLE_PAUSE_SECONDS
            logger.warning(
                "%s not made, the broker is unreachable (%s: %s); %s; the next %g s of hand-overs in this"
                " process wait for the pump too",
                hand_over.__name__,
                error.__class__.__name__,
                error,
                AFTERWARDS[undo is not None],
                UNREACHABLE_PAUSE_SECONDS,
            )
            _undo_safely(undo)
        except Exception:
            logger.exception("%s failed; %s", hand_over.__name__, AFTERWARDS[undo is not None])
            _undo_safely(undo)

    transaction.on_commit(hand_over_after_commit)


def _undo_safely(undo: Callable[[], None] | None) -> None:
    if undo is None:
        return
    try:
        undo()
    except Exception:
        # The row keeps its hand-over mark; the pump's stale-after rule re-hands it in the end.
        logger.exception("could not mark a failed hand-over for the pump")


BROKER_ERRORS = (KombuOperationalError, redis.RedisError, ConnectionError, OSError)


# --- What the broker holds ------------------------------------------------------------------------------

# Present in the broker's Redis database while everything handed over to it is still there. A flush, a
# restart without persistence or a failover to an empty server removes it, and so does a worker that
# reconnects (WorkerReconnected): the pump then hands over again whatever it handed over before.
HANDOVERS_KEPT_KEY = "scheduling:handovers-kept"


@cache
def _broker_redis():
    if not settings.REDIS_URL:
        return None  # the zero-configuration file broker: nothing flushes it behind our back
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def broker_lost_work() -> bool | None:
    """True when the hand-overs made so far may be gone from the broker (the marker is missing: the
    caller hands them over again, then calls `broker_keeps_work`); None when the broker cannot be reached."""
    client = _broker_redis()
    if client is None:
        return False
    try:
        return not client.exists(HANDOVERS_KEPT_KEY)
    except redis.RedisError:
        return None


def broker_keeps_work() -> None:
    client = _broker_redis()
    if client is not None:
        client.set(HANDOVERS_KEPT_KEY, uuid.uuid4().hex)


class WorkerReconnected(bootsteps.StartStopStep):
    """A consumer bootstep, started again every time the worker reconnects to the broker. Celery drops
    the ETA tasks a consumer was holding when its connection breaks (they can no longer be acknowledged,
    and Redis would give them back only after the visibility timeout, hours later), so a reconnect
    removes the marker and the pump hands that work over again within a tick."""

    requires = {"celery.worker.consumer.connection:Connection"}

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self.connected_before = False

    def start(self, parent):
        if self.connected_before:
            logger.warning(
                "reconnected to the broker: the ETA tasks held before are dropped; asking the pump to"
                " hand them over again"
            )
            _forget_handovers()
        self.connected_before = True


def _forget_handovers() -> None:
    client = _broker_redis()
    if client is None:
        return
    try:
        client.delete(HANDOVERS_KEPT_KEY)
    except redis.RedisError:
        logger.warning("could not reach Redis to ask for a re-hand; the stale-after rule will", exc_info=True)


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
