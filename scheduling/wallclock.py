"""Wall-clock time in an IANA zone, and the one rule that turns it into an instant.

Recurring rules, `localTime` and quiet hours all speak of the time on a clock in some zone. Twice a year
that clock skips an hour (spring forward) or shows one twice (fall back), and the rule here is the one
RFC 5545 gives (§3.3.10's last paragraph with §3.3.5), which Debian cron follows for a job in the
skipped hour:

- a wall time that does not exist is read with the UTC offset in force *before* the gap, so it lands
  right after the change (02:30 on the night New York skips 02:00–03:00 is 03:30 EDT), never dropped;
- a wall time that occurs twice is its first occurrence (the one before the clocks go back).

PEP 495 gives exactly this reading to `fold=0`, but it is the rule of this service, so it is spelled out
and checked here rather than left to whatever a library does with an aware datetime (dateutil's rrule
gets the gap wrong: dateutil #1425).
"""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_zones

RECIPIENT = "recipient"  # "the recipient's zone, from the phone number"
UNKNOWN_ZONES = {"Etc/Unknown"}  # what phonenumbers answers for a number it cannot place


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; ValueError naming it when there is none."""
    if not isinstance(name, str) or not name or name != name.strip() or "\x00" in name:
        raise ValueError("must be an IANA time zone name, e.g. Europe/Tallinn.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # ValueError: a path-like name such as "../x"
        raise ValueError(f'"{name}" is not an IANA time zone name, e.g. Europe/Tallinn.') from None


def to_instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant of the naive wall time `wall` on a clock in `tz` (the module's rule)."""
    before = wall.replace(tzinfo=tz, fold=0).utcoffset()  # in a gap: the offset before it; repeated: the first
    return (wall - before).replace(tzinfo=UTC)


def to_wall(instant: datetime, tz: ZoneInfo) -> datetime:
    """What a clock in `tz` shows at `instant`, as a naive datetime."""
    return instant.astimezone(tz).replace(tzinfo=None, fold=0)


def exists(wall: datetime, tz: ZoneInfo) -> bool:
    """False for a wall time the clocks skip."""
    return to_wall(to_instant(wall, tz), tz) == wall


def next_wall_instant(at: datetime, wall_time, tz: ZoneInfo) -> datetime:
    """The first instant after `at` at which a clock in `tz` shows `wall_time` (a datetime.time), by the
    module's rule. On a night that repeats the time, the second showing counts when `at` is past the first."""
    day = to_wall(at, tz).date()
    for offset in range(3):
        wall = datetime.combine(day + timedelta(days=offset), wall_time)
        for fold in (0, 1):
            instant = to_instant(wall, tz) if fold == 0 else wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
            if instant > at:
                return instant
    raise AssertionError("a wall time shows within three days")  # every clock shows every time daily or skips it


def recipient_zone(to: str) -> str | None:
    """The one IANA zone of a phone number (E.164 digits), or None when it has several, none, or is a group."""
    try:
        number = phonenumbers.parse(f"+{to}", None)
    except phonenumbers.NumberParseException:
        return None
    zones = set(number_zones.time_zones_for_number(number)) - UNKNOWN_ZONES
    return zones.pop() if len(zones) == 1 else None
