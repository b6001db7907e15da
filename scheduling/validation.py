"""Parsing and rules shared by every entry point (both API styles and the admin)."""

import ipaddress
import re
import socket
from datetime import UTC, datetime

import ada_url
import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from urllib3.util import parse_url

GROUP_ID = re.compile(r"^[0-9]{5,32}(-[0-9]{5,20})?@g\.us$")
# What new_message_id makes (`sched_` + URL-safe base64). Checked before a lookup, so that a NUL or
# other junk in a path or cursor is "not found" rather than a database error.
MESSAGE_ID = re.compile(r"sched_[A-Za-z0-9_-]{1,34}")


BATCH_ID = re.compile(r"batch_[A-Za-z0-9_-]{1,34}")


def is_message_id(value: str) -> bool:
    return MESSAGE_ID.fullmatch(value) is not None


def is_batch_id(value: str) -> bool:
    return BATCH_ID.fullmatch(value) is not None


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
        raise ValidationError(
            f'"{value}" is not a valid phone number in international (E.164) format, e.g. +37255555555.'
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).removeprefix("+")


# IPv6 forms that carry an IPv4 address in their last 32 bits; a packet to one reaches that IPv4 host.
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated, but still routed by some stacks (::127.0.0.1)
IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known NAT64 prefix (64:ff9b::a9fe:a9fe is 169.254.169.254)


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        ip = embedded_ipv4(ip) or ip
    return ip.is_global and not ip.is_multicast


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one embeds (mapped, compatible, translated, NAT64, 6to4, Teredo): judged
    by that address, since that is the host it reaches."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client's address, which the relay delivers to
    if any(ip in network for network in (IPV4_COMPATIBLE, IPV4_TRANSLATED, NAT64)):
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return None


# A WHATWG parser (browsers, most providers' fetchers) drops tabs and newlines and reads "\" as "/",
# where Python's urlsplit keeps them in the host part: `http://127.0.0.1:3199\@example.com/` is
# example.com to one and 127.0.0.1 to the other. Refused outright, so that every reader sees one URL.
AMBIGUOUS_URL_CHARACTERS = re.compile(r"[\\\x00-\x20\x7f]")
INTERNAL_NAMES = (".localhost", ".internal", ".local")


def check_public_url(url: str) -> None:
    """An http(s) URL whose host is not internal however it is read: by the WHATWG URL standard, as a
    provider fetching media reads it, and by urllib3, as our HTTP client connects to it. Only the text
    is checked here; names are resolved and checked where the URL is used (outbound.py)."""
    if AMBIGUOUS_URL_CHARACTERS.search(url):
        raise ValidationError("must not contain backslashes, spaces or control characters.")
    try:
        whatwg = ada_url.URL(url)
        client_host = parse_url(url).host
    except ValueError:  # urllib3's LocationParseError is one too
        raise ValidationError("must be an http(s) URL.") from None
    if whatwg.protocol not in ("http:", "https:"):
        raise ValidationError("must be an http(s) URL.")
    if settings.WEBHOOK_ALLOW_PRIVATE:
        return
    if any(is_internal_host(host) for host in (whatwg.hostname, client_host)):
        raise ValidationError("must not point to a private, loopback or link-local address.")


def is_internal_host(host: str | None) -> bool:
    host = (host or "").strip("[]").rstrip(".").lower()
    try:
        return not is_public_address(host)
    except ValueError:  # a name, not an address in standard form
        pass
    try:  # the legacy forms the resolver still takes: 127.1, 0x7f.0.0.1, 2130706433
        return not is_public_address(socket.inet_ntoa(socket.inet_aton(host)))
    except (OSError, ValueError):
        return host in ("", "localhost") or host.endswith(INTERNAL_NAMES)


def format_instant(value: datetime | None) -> str | None:
    """UTC with milliseconds and `Z`, as the seed (and JavaScript's toISOString) writes it."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
