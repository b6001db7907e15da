"""Parsing and rules shared by every entry point (both API styles and the admin)."""

import ipaddress
import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError

GROUP_ID = re.compile(r"^[0-9]{5,32}(-[0-9]{5,20})?@g\.us$")
# What new_message_id makes (`sched_` + URL-safe base64). Checked before a lookup, so that a NUL or
# other junk in a path or cursor is "not found" rather than a database error.
MESSAGE_ID = re.compile(r"sched_[A-Za-z0-9_-]{1,34}")


def is_message_id(value: str) -> bool:
    return MESSAGE_ID.fullmatch(value) is not None


def parse_instant(value: str) -> datetime:
    """Any ISO 8601 date-time; an offset is honoured and a naive time means UTC (as Messente does)."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("must be an ISO 8601 date-time, e.g. 2026-02-01T15:00:00Z.")
    try:
        parsed = datetime.fromisoformat(value.strip())
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 shifted out of range by an offset
        raise ValidationError(f'"{value}" is not an ISO 8601 date-time, e.g. 2026-02-01T15:00:00Z.') from None


def check_schedule_window(when: datetime, now: datetime) -> None:
    if when < now - settings.SCHEDULE_PAST_TOLERANCE:
        raise ValidationError("must not be in the past.")
    if when > now + settings.SCHEDULE_MAX_AHEAD:
        days = settings.SCHEDULE_MAX_AHEAD.total_seconds() / 86400
        raise ValidationError(f"must be at most {days:g} days in the future.")


def normalise_recipient(value: str) -> str:
    """A phone number as E.164 digits without '+' (WhatsApp's form), or a group id `…@g.us`."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("must be a phone number in international format or a group id ending in @g.us.")
    value = value.strip()
    if GROUP_ID.match(value):
        return value
    try:
        return normalise_phone(value)
    except ValidationError:
        raise ValidationError(
            f'"{value}" is not a valid phone number in international format (e.g. 919988066776) '
            "or a group id ending in @g.us."
        ) from None


def normalise_phone(value: str) -> str:
    candidate = value.strip() if value.strip().startswith("+") else f"+{value.strip().removeprefix('00')}"
    try:
        number = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise ValidationError(f'"{value}" is not a valid phone number in international (E.164) format, e.g. +37255555555.')
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).removeprefix("+")


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_public_url(url: str) -> None:
    """Refuse URLs that name an internal host outright (the provider would fetch them for us).
    Webhook URLs are checked again on the connected socket, where DNS cannot fool the check."""
    if settings.WEBHOOK_ALLOW_PRIVATE:
        return
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    try:
        internal = not is_public_address(host)
    except ValueError:  # a name, not an address
        internal = host == "localhost" or host.endswith((".localhost", ".internal", ".local"))
    if internal:
        raise ValidationError("must not point to a private, loopback or link-local address.")


def format_instant(value: datetime | None) -> str | None:
    """UTC with milliseconds and `Z`, as the seed (and JavaScript's toISOString) writes it."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
