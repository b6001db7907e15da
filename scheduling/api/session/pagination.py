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
    def of(cls, request, is_id=is_message_id) -> "PageRequest":
        """`is_id`: what the ids of the rows listed look like (messages' by default)."""
        cursor = decode_cursor(request.query_params.get("cursor"), is_id)
        return cls(limit=page_limit(request.query_params.get("limit")), after=cursor)


def page_limit(raw: str | None) -> int:
    if not raw:
        return settings.API_PAGE_SIZE
    if not WHOLE_NUMBER.fullmatch(raw) or not 1 <= int(raw) <= settings.API_MAX_PAGE_SIZE:
        raise exceptions.ValidationError({"limit": [f"must be a whole number from 1 to {settings.API_MAX_PAGE_SIZE}."]})
    return int(raw)


def encode_cursor(when: datetime, row_id: str) -> str:
    return base64.urlsafe_b64encode(f"{when.isoformat()} {row_id}".encode()).decode()


def next_link(request, when: datetime, row_id: str) -> str:
    """This list's URL, from the row after (when, row_id) on."""
    return replace_query_param(request.build_absolute_uri(), "cursor", encode_cursor(when, row_id))


def decode_cursor(raw: str | None, is_id=is_message_id) -> tuple[datetime, str] | None:
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
    if after is None or not is_id(message_id):
        raise exceptions.ValidationError({"cursor": ["Invalid cursor."]})
    return after, message_id


def page_response(request, rows: list, page: PageRequest) -> Response:
    """`rows` holds up to limit + 1 messages: the one beyond the page says there is a next page."""
    shown = rows[: page.limit]
    more = len(rows) > page.limit
    following = next_link(request, shown[-1].scheduled_at, shown[-1].id) if more else None
    return Response(
        {"success": True, "scheduled": ScheduledMessageSerializer(shown, many=True).data, "next": following}
    )
