"""The hand-over bookkeeping of a row: when it was handed to the broker and under which task id.

A message due within the horizon is handed over in the transaction that makes it due; a later one waits
for the pump. The hand-over itself runs after the commit, and is undone (the row marked "not handed
over") when the broker cannot take it, so that the pump hands it over once the broker is back.
"""

from datetime import datetime
from functools import partial
from itertools import groupby

from django.conf import settings
from django.utils import timezone

from .. import handover
from ..models import ScheduledMessage


def handover_fields(message_id: str, version: int, due_at: datetime, now: datetime) -> dict:
    """A message due within the horizon goes straight to Celery; the rest waits for the pump."""
    if due_at > now + settings.DISPATCH_HORIZON:
        return {"handed_over_at": None, "task_id": ""}
    return {"handed_over_at": now, "task_id": handover.send_task_id(message_id, version)}


def enqueue_after_commit(message: ScheduledMessage) -> None:
    if message.handed_over_at is not None:
        handover.after_commit(
            handover.enqueue_send,
            message.pk,
            message.version,
            message.due_at,
            undo=partial(forget_handovers, ScheduledMessage, [message.pk], message.handed_over_at),
        )


def forget_handovers(model, ids: list, handed_over_at: datetime) -> None:
    """The broker never got these hand-overs: mark the rows not handed over (unless they have been
    handed over again since), so the pump's next pass after the broker is back hands them over."""
    model.objects.filter(pk__in=ids, handed_over_at=handed_over_at).update(handed_over_at=None)


# A group of messages due together is split into at least this many batches (while it has that many
# messages): more than a small fleet has pool processes, so all of them start on it at once.
BATCHES_PER_GROUP = 16


def enqueue_sends(rows) -> None:
    """Messages due at the same instant (a campaign) go in batches: one task, one claim for many. So do
    those already past their time (the backlog after a broker outage or a paused session): all are due now."""
    now = timezone.now()
    for group in _same_due_batches(rows, settings.DISPATCH_SEND_BATCH, now):
        if len(group) == 1:
            row_id, version, due_at, _ = group[0]
            handover.enqueue_send(row_id, version, due_at)
        else:
            handover.enqueue_send_batch([(row[0], row[1]) for row in group], group[0][2])


def _same_due_batches(rows, most: int, now: datetime):
    """Split rows (ordered by due time) into batches of one due time each, every time up to `now` counting
    as now. A small group stays in small batches, so that all of the fleet's processes start on it at
    once; a campaign of thousands goes `most` at a time."""
    for _, same_due in groupby(rows, key=lambda row: max(row[2], now)):
        group = list(same_due)
        size = max(1, min(most, len(group) // BATCHES_PER_GROUP))
        for start in range(0, len(group), size):
            yield group[start : start + size]


def enqueue_deliveries(rows) -> None:
    for row_id, version, due_at, _ in rows:
        handover.enqueue_webhook(row_id, version, due_at)
