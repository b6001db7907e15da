"""Quiet hours: a session's window of wall-clock time (in a zone, or in each recipient's) in which nothing
is sent. A message falling due inside it waits until it ends. A pure rule over a message and its session:
the services ask it when a message is made and when a tick's task is about to send it.
"""

from datetime import datetime, time

from .wallclock import RECIPIENT, next_wall_instant, recipient_zone, to_wall, zone


def quiet_until(message, at: datetime) -> datetime | None:
    """When the quiet hours that `at` falls in end for `message` (a ScheduledMessage with its session), or
    None when it may go at `at`. Not held: a message that says ignore_quiet_hours, an omnimessage (its
    channels' ttl and validity count from their start), and, with the recipient's zone, a group or a number
    whose zone cannot be told (the API refuses such a number only where the client asks for its zone)."""
    session = message.session
    if message.ignore_quiet_hours or message.channel_count or session.quiet_start is None:
        return None
    tz = quiet_zone(session.quiet_time_zone, message.to)
    if tz is None or not inside(to_wall(at, tz).time(), session.quiet_start, session.quiet_end):
        return None
    return next_wall_instant(at, session.quiet_end, tz)


def quiet_zone(name: str, to: str):
    if name != RECIPIENT:
        return zone(name)
    found = recipient_zone(to)
    return zone(found) if found else None


def inside(wall: time, start: time, end: time) -> bool:
    """Whether the clock time `wall` is in [start, end); a window whose end is before its start spans midnight."""
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end


def split_quiet(messages: list, at: datetime) -> tuple[list, list]:
    """(those that may go at `at`, [(message, when its quiet hours end)] for the others)."""
    free, held = [], []
    for message in messages:
        until = quiet_until(message, at)
        if until is None:
            free.append(message)
        else:
            held.append((message, until))
    return free, held
