"""Pages of the session API's list: a keyset on (scheduledAt, id).

DRF's CursorPagination positions on `scheduled_at` alone and walks rows that share it by an offset,
which it caps at 1,000: a campaign of thousands due at one instant gave the same page forever. The
cursor here names the last row shown, so each page is one range read of the (session, scheduled_at,
id) index, however many messages share an instant.
"""

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from ...validation import is_message_id
from .serializers import ScheduledMessageSerializer

WHOLE_NUMBER = re.compile(r"[0-9]{1,4}")


@dataclass(frozen=True)
class PageRequest:
    limit: int
    after: tuple[datetime, str] | None  # the (scheduled_at, id) of the previous page's last message

    @classmethod
    def of(cls, request) -> "PageRequest":
        return cls(
            limit=page_limit(request.query_params.get("limit")), after=decode_cursor(request.query_params.get("cursor"))
        )


def page_limit(raw: str | None) -> int:
    if not raw:
        return settings.API_PAGE_SIZE
    if not WHOLE_NUMBER.fullmatch(raw) or not 1 <= int(raw) <= settings.API_MAX_PAGE_SIZE:
        raise exceptions.ValidationError({"limit": [f"must be a whole number from 1 to {settings.API_MAX_PAGE_SIZE}."]})
    return int(raw)


def encode_cursor(message) -> str:
    return base64.urlsafe_b64encode(f"{message.scheduled_at.isoformat()} {message.id}".encode()).decode()


def decode_cursor(raw: str | None) -> tuple[datetime, str] | None:
    """The position a cursor names; anything this module did not write is a 400, never a query."""
    if not raw:
        return None
    try:
        instant, message_id = base64.urlsafe_b64decode(raw.encode("ascii")).decode("ascii").split(" ")
        after = datetime.fromisoformat(instant)
        after = (
            after.astimezone(UTC) if after.tzinfo else None
        )  # the service writes UTC; the database wants it in range
    except (ValueError, OverflowError):  # ValueError covers binascii.Error and UnicodeError
        after = message_id = None
    if after is None or not is_message_id(message_id):
        raise exceptions.ValidationError({"cursor": ["Invalid cursor."]})
    return after, message_id


def page_response(request, rows: list, page: PageRequest) -> Response:
    """`rows` holds up to limit + 1 messages: the one beyond the page says there is a next page."""
    shown = rows[: page.limit]
    more = len(rows) > page.limit
    next_link = replace_query_param(request.build_absolute_uri(), "cursor", encode_cursor(shown[-1])) if more else None
    return Response(
        {"success": True, "scheduled": ScheduledMessageSerializer(shown, many=True).data, "next": next_link}
    )
