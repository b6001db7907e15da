"""Which of a batch may go now, and when the rest may: the fleet-wide slots of pacing.py for each
message's session and transport. A message deferred earlier holds its slot on the key it waited for, and
asks only the other one when it comes back. A send that may go waits for its planned instant, then
passes the gate of its keys (`wait_for_turn`), so a late start never bunches the sends after it."""

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.utils import timezone

from .. import pacing
from ..models import ScheduledMessage
from .outgoing import transport_name
from .transitions import Postponement

# How long a sending thread may wait at the gate in all. Longer (a 429's cooldown, or several late starts
# ahead of it) and the message goes back to pending for then: threads wait for ticks, not for seconds.
GATE_MAX_WAIT_S = 0.25
# A send that reaches the gate later than this after its planned instant (its thread started late) does not
# wait there: waiting, it would take the turn of a send that is on time, and push every later one back.
LATE_AT_GATE_S = pacing.PLANNING_LEAD_MS / 1000


@dataclass(frozen=True)
class Plan:
    at: datetime  # the instant at which it goes: its due time, or its pacing instant, within the window
    gate: tuple = ()  # its paced keys and their intervals, checked again just before it goes
    deadline: datetime | None = None  # its expiry: claimed before it, a send that reaches it does not go


class NotNow(Exception):
    """The gate would hold this send longer than a thread may wait: send it `seconds` later instead."""

    def __init__(self, seconds: float, why: str):
        super().__init__(why)
        self.seconds = seconds


def pace(messages: list[ScheduledMessage]) -> tuple[dict, list[Postponement]]:
    """({message: its Plan within the window}, [a Postponement to its slot for each of those that must
    wait for a later one]); the ones that go in the order their sends should start."""
    now = timezone.now()
    senders = [
        pacing.Sender(
            transport_name(message, None),
            str(message.session_id),
            message.session.send_rate,
            holds=message.paced_on if message.paced_for is not None else "",
            not_before_ms=math.ceil((message.paced_for or message.due_at).timestamp() * 1000),  # never early
        )
        for message in messages
    ]
    go, wait = {}, []
    for message, sender, slot in zip(
        messages, senders, pacing.slots(senders, round(now.timestamp() * 1000)), strict=True
    ):
        at = _instant(slot.at_ms)
        if not slot.waits_on:
            go[message] = Plan(at, slot.gate, message.expires_at)
        else:
            detail = f"paced ({_why(sender, slot.waits_on)}): waits {(at - now).total_seconds():.2f} s for its slot"
            wait.append(Postponement(message, _instant(pacing.claim_ms(slot.at_ms)), detail, at, slot.waits_on))
    # Paced sends first: each needs a sending thread at its instant, the others only as soon as one is free.
    return dict(sorted(go.items(), key=lambda item: (not item[1].gate, item[1].at))), wait


def wait_for_turn(plan: Plan) -> None:
    """In a sending thread: sleep until the planned instant (within the window), then until the gate lets
    the send through; NotNow if it came late, or would wait longer than GATE_MAX_WAIT_S."""
    time.sleep(max(0.0, (plan.at - timezone.now()).total_seconds()))
    waited = 0.0
    while (wait := pacing.gate_wait(plan.gate)) > 0:
        late = (timezone.now() - plan.at).total_seconds() - waited > LATE_AT_GATE_S
        if late or waited + wait > GATE_MAX_WAIT_S:
            raise NotNow(wait, f"paced at its send: its rate's spacing leaves it {wait:.2f} s to wait")
        time.sleep(wait)
        waited += wait


def _instant(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _why(sender: pacing.Sender, waits_on: str) -> str:
    if waits_on == "session":
        return f"session {sender.session_rate}"
    rate = pacing.transport_rate_text(sender.transport)
    return f"transport {sender.transport} {rate}" if rate else f"transport {sender.transport} cooling down after a 429"
