"""The hand-over bookkeeping of a row: when it was handed to the broker and for which tick.

A message due within the horizon is handed over in the transaction that makes it due; a later one waits
for the pump. The hand-over itself runs after the commit, and is undone (the row marked "not handed
over") when the broker cannot take it, so that the pump hands it over once the broker is back.

Hand-overs go by tick (DISPATCH_TICK): every message due within one tick is sent by the task that runs
at the tick's end, whether it was created alone through the API, in bulk, or handed over by the pump.
"""

import math
from datetime import UTC, datetime, timedelta
from functools import partial

from django.conf import settings
from django.utils import timezone

from .. import handover
from ..models import ScheduledMessage

# A hand-over made this close to its tick (or after it) gets a task of its own: the tick's shared task
# may already have claimed what was due, before this message was committed.
SHARED_TICK_LEAD = timedelta(seconds=1)


def tick_end(due_at: datetime) -> datetime:
    """The end of the tick `due_at` falls in: the first tick boundary at or after it (never earlier)."""
    tick_us = settings.DISPATCH_TICK // MICROSECOND
    stamp_us = (due_at - EPOCH) // MICROSECOND
    return EPOCH + math.ceil(stamp_us / tick_us) * tick_us * MICROSECOND


EPOCH, MICROSECOND = datetime(1970, 1, 1, tzinfo=UTC), timedelta(microseconds=1)


def handover_fields(message_id: str, version: int, due_at: datetime, now: datetime) -> dict:
    """A message due within the horizon goes straight to Celery; the rest waits for the pump."""
    if due_at > now + settings.DISPATCH_HORIZON:
        return {"handed_over_at": None, "task_id": ""}
    return {"handed_over_at": now, "task_id": handover.due_task_id(tick_end(due_at))}


def enqueue_handed_over(messages: list[ScheduledMessage]) -> None:
    """The tasks of the ticks of rows handed over together (one `handed_over_at`), after the commit of the
    transaction that wrote them (or at once, outside one)."""
    handed_over_at = next((message.handed_over_at for message in messages if message.handed_over_at), None)
    if handed_over_at is not None:
        enqueue_ticks_after_commit(messages, handed_over_at)


def enqueue_ticks_after_commit(messages: list[ScheduledMessage], handed_over_at: datetime) -> None:
    """After the commit, the tasks of the ticks these messages (handed over at `handed_over_at`, or not at
    all: beyond the horizon) fall in: one hand-over per tick, undone for its messages if the broker refuses."""
    ticks: dict[datetime, list[str]] = {}
    for message in messages:
        if message.handed_over_at is not None:
            ticks.setdefault(tick_end(message.due_at), []).append(message.pk)
    for until, ids in ticks.items():
        handover.after_commit(
            hand_over_due, until, undo=partial(forget_handovers, ScheduledMessage, ids, handed_over_at)
        )


def hand_over_due(due_at: datetime) -> None:
    """The tick's task for a message due at `due_at`, shared with the tick's other messages unless the
    tick is about to end."""
    until = tick_end(due_at)
    handover.enqueue_send_due(until, shared=until - timezone.now() > SHARED_TICK_LEAD)


def forget_handovers(model, ids: list, handed_over_at: datetime) -> None:
    """The broker never got these hand-overs: mark the rows not handed over (unless they have been
    handed over again since), so the pump's next pass after the broker is back hands them over."""
    model.objects.filter(pk__in=ids, handed_over_at=handed_over_at).update(handed_over_at=None)


def enqueue_sends(rows) -> None:
    """The pump's hand-overs (rows of id, version, due_at, handed_over_at, ordered by due time): one task
    per tick they fall in; everything already past its time (a backlog) is due in the tick of now."""
    now = timezone.now()
    for until in sorted({tick_end(max(row[2], now)) for row in rows}):
        handover.enqueue_send_due(until, shared=False)


def enqueue_deliveries(rows) -> None:
    for row_id, version, due_at, _ in rows:
        handover.enqueue_webhook(row_id, version, due_at)
