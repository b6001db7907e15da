"""The one place that hands work to the broker: by task name, so services never import tasks (and
tasks, which import services, close no circle). What the broker holds, and whether it may have lost it,
is broker.py's.

The database is the source of truth, so a broker that cannot be reached never fails a write: hand-overs
run after the write commits (`after_commit`), and one that fails is logged and undone (the row goes back
to "not handed over"), so the pump hands it over as soon as the broker answers again.

A task's time (its ETA) is kept to the millisecond on every broker. Redis's tasks wait in the worker, which
runs them on time. RabbitMQ's native delayed delivery counts whole seconds (and Celery refuses a delay
under one): a task due a second or more ahead carries its exact time and comes up to a second early, and
the worker waits out the rest of it before running it; one due sooner is delivered at once, and waits for
its time in the worker (`wait_for`: a tick's task waits for its tick, the others for their `not_before`).
"""

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache

import redis
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from . import store

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
    _publish(SEND_TASK, [message_id, version], at=eta, task_id=send_task_id(message_id, version))


def tick_start(until: datetime) -> datetime:
    """When the task of the tick ending at `until` runs: it claims what falls due within the tick and sends
    each message at its own time."""
    return until - settings.DISPATCH_TICK


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
        # Its tick's start is its time: the task waits for it itself (`wait_for`) if it comes early.
        current_app.send_task(
            SEND_DUE_TASK,
            args=[until.isoformat()],
            eta=broker_eta(tick_start(until)),
            task_id=f"{due_task_id(until)}-{uuid.uuid4().hex[:12]}",
        )
    except Exception:
        if shared:  # the tick has no task after all: the next hand-over for it must make one
            _forget_tick(until)
        raise


# RabbitMQ: a task due at least this far ahead goes through delayed delivery (more than the one second Celery
# asks for, so that the time Celery takes to publish it cannot bring it under).
DELAYED_DELIVERY_FROM = timedelta(seconds=1.25)


def broker_eta(at: datetime | None) -> datetime | None:
    """The ETA to hand the broker for a task due `at`: on RabbitMQ, none for a task due within
    DELAYED_DELIVERY_FROM (it is delivered at once, and waits for its time in the worker: `wait_for`)."""
    if at is None or settings.BROKER_KIND != "amqp" or at - timezone.now() >= DELAYED_DELIVERY_FROM:
        return at
    return None


def _publish(name: str, args: list, *, at: datetime | None, task_id: str | None = None) -> None:
    """The task `name(*args)`, to run at `at` (None: at once). One the broker cannot hold until then
    (`broker_eta`) goes at once, with its time as `not_before`, which the task waits for."""
    eta = broker_eta(at)
    kwargs = {"not_before": at.isoformat()} if at is not None and eta is None else {}
    current_app.send_task(name, args=args, kwargs=kwargs, eta=eta, task_id=task_id)


def wait_for(at: datetime) -> None:
    """Run no earlier than `at`: a task that RabbitMQ delivered at once (`broker_eta`) waits here for the
    rest of the second; on time, this is a no-op."""
    ahead = (at - timezone.now()).total_seconds()
    if ahead > 0:
        time.sleep(min(ahead, WAIT_AT_MOST.total_seconds()))


# Further ahead than this, the hosts' clocks disagree: run anyway (each send still waits for its message's time).
WAIT_AT_MOST = DELAYED_DELIVERY_FROM + timedelta(seconds=1)


def _tick_key(until: datetime) -> str:
    return f"scheduling:tick:{due_task_id(until)}"


def _first_for_tick(until: datetime) -> bool:
    """True for the first hand-over of this tick (a key in the store). A broker that loses the task keeps
    no promise the key made: the pump then hands every outstanding row over again, each tick anew."""
    client = _store()
    if client is None:
        return True  # the file broker: a task per hand-over, still safe (the claim decides)
    expires_ms = max(1, round((until.timestamp() - time.time()) * 1000)) + TICK_KEY_KEPT_MS
    return bool(client.set(_tick_key(until), 1, nx=True, px=expires_ms))


def _forget_tick(until: datetime) -> None:
    client = _store()
    if client is None:
        return
    try:
        client.delete(_tick_key(until))
    except redis.RedisError:
        pass  # the store is away too: the rows' hand-overs were undone, and the pump makes tasks of its own


TICK_KEY_KEPT_MS = 60_000  # past its tick: a late hand-over for a tick already run must not count on that task


@cache
def _store():
    return store.shared(timeout=2)


def enqueue_webhook(delivery_id: str, version: int, eta=None) -> None:
    _publish(WEBHOOK_TASK, [delivery_id, version], at=eta)


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
