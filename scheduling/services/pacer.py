"""Which of a batch may go now, and when the rest may: the fleet-wide slots of pacing.py for each
message's session and transport. A message deferred earlier holds its slot on the key it waited for, and
asks only the other one when it comes back."""

from datetime import UTC, datetime

from django.utils import timezone

from .. import pacing
from ..models import ScheduledMessage
from .outgoing import transport_name


def pace(messages: list[ScheduledMessage]) -> tuple[dict, list]:
    """({message: the instant within this tick at which it goes}, [(message, slot, key it waits on, why)
    for those deferred to a later slot])."""
    now = timezone.now()
    senders = [
        pacing.Sender(
            transport_name(message, None),
            str(message.session_id),
            message.session.send_rate,
            holds=message.paced_on if message.paced_for is not None and message.paced_for <= now else "",
        )
        for message in messages
    ]
    go, wait = {}, []
    for message, sender, slot in zip(
        messages, senders, pacing.slots(senders, round(now.timestamp() * 1000)), strict=True
    ):
        at = datetime.fromtimestamp(slot.at_ms / 1000, UTC)
        if not slot.waits_on:
            go[message] = at
        else:
            wait.append((message, at, slot.waits_on, _why(sender, slot.waits_on)))
    return go, wait


def _why(sender: pacing.Sender, waits_on: str) -> str:
    if waits_on == "session":
        return f"session {sender.session_rate}"
    rate = pacing.transport_rate_text(sender.transport)
    return f"transport {sender.transport} {rate}" if rate else f"transport {sender.transport} cooling down after a 429"
