"""The session API of the seed: thin views that parse, call one service or selector, and render."""

import uuid

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from ... import selectors, services
from ...models import MessageStatus
from ...validation import is_batch_id
from .. import idempotency, throttling
from ..throttling import RateLimited
from .auth import HasSessionKey, SessionKeyAuthentication
from .local_time import TIME_FIELDS, local_time_of
from .pagination import PageRequest, page_response
from .serializers import (
    CancelledEnvelope,
    ErrorEnvelope,
    RateLimitedEnvelope,
    ScheduledEnvelope,
    ScheduledListEnvelope,
    ScheduledMessageSerializer,
    ScheduleRequestSerializer,
    content_of,
)

ERRORS = {code: ErrorEnvelope for code in (400, 401, 403, 404)} | {429: RateLimitedEnvelope}
KEYED = {409: ErrorEnvelope, 422: ErrorEnvelope}  # a key in use, or used with another request
CANCELLED = "Scheduled message cancelled successfully"


@extend_schema(parameters=throttling.HEADERS)
class SessionView(RateLimited, APIView):
    authentication_classes = [SessionKeyAuthentication]
    permission_classes = [HasSessionKey]

    def session_of(self, request, session_id):
        # Another session's key learns nothing: the same 404 as for a session that does not exist.
        if _as_uuid(session_id) != request.auth.session_id:
            raise exceptions.NotFound("Session not found")
        return request.auth.session

    def message_of(self, request, session_id, scheduled_id):
        message = selectors.message_get(session=self.session_of(request, session_id), message_id=scheduled_id)
        if message is None:
            raise exceptions.NotFound("Scheduled message not found")
        return message


def _as_uuid(value):
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def envelope(message, code=status.HTTP_200_OK):
    return Response({"success": True, "scheduled": ScheduledMessageSerializer(message).data}, status=code)


class ScheduledListView(SessionView):
    @extend_schema(
        operation_id="schedule_message",
        request=ScheduleRequestSerializer,
        parameters=idempotency.PARAMETERS,
        responses={201: ScheduledEnvelope, 413: ErrorEnvelope, **KEYED, **ERRORS},
    )
    def post(self, request, session_id):
        session = self.session_of(request, session_id)
        return idempotency.idempotent(request, session, lambda: self.schedule(request, session))

    @staticmethod
    def schedule(request, session):
        form = ScheduleRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        message = services.message_schedule(session=session, **form.validated_data)
        return envelope(message, status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="list_scheduled_messages",
        parameters=[
            OpenApiParameter("status", enum=MessageStatus.values, description="Only messages with this status."),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": settings.API_MAX_PAGE_SIZE},
                description=f"Page size (default {settings.API_PAGE_SIZE}, 1 to {settings.API_MAX_PAGE_SIZE}).",
            ),
            OpenApiParameter("cursor", str, description="From a previous page's `next`."),
            OpenApiParameter("batchId", str, description="Only the messages of this batch (a bulk request)."),
            OpenApiParameter("recurringId", str, description="Only the occurrences of this recurring series."),
        ],
        responses={200: ScheduledListEnvelope, **ERRORS},
    )
    def get(self, request, session_id):
        session = self.session_of(request, session_id)
        series = request.query_params.get("recurringId")
        wanted = request.query_params.get("status") or None
        if wanted is not None and wanted not in MessageStatus.values:
            raise exceptions.ValidationError(
                {"status": [f'"{wanted}" is not a status; use one of {", ".join(MessageStatus.values)}.']}
            )
        batch_id = request.query_params.get("batchId") or None
        if batch_id is not None and not is_batch_id(batch_id):
            raise exceptions.ValidationError({"batchId": ["Invalid batch id: it starts with batch_."]})
        page = PageRequest.of(request)
        found = selectors.message_list(
            session=session, status=wanted, batch_id=batch_id, after=page.after, recurring_id=series
        )
        return page_response(request, list(found[: page.limit + 1]), page)


class ScheduledDetailView(SessionView):
    @extend_schema(operation_id="get_scheduled_message", responses={200: ScheduledEnvelope, **ERRORS})
    def get(self, request, session_id, scheduled_id):
        return envelope(self.message_of(request, session_id, scheduled_id))

    @extend_schema(
        operation_id="update_scheduled_message",
        request=ScheduleRequestSerializer(partial=True),
        description="Reschedule or edit a pending message. Fields left out keep their value.",
        responses={200: ScheduledEnvelope, 409: ErrorEnvelope, **ERRORS},
    )
    def patch(self, request, session_id, scheduled_id):
        message = self.message_of(request, session_id, scheduled_id)
        if not isinstance(request.data, dict):
            raise exceptions.ValidationError("Expected a JSON object.")
        services.message_check_changeable(message=message)
        # The time it keeps may be past (a retry waits); only a new time is held to the window.
        new_time = bool(TIME_FIELDS & request.data.keys())
        form = ScheduleRequestSerializer(
            data={**current_values(message, keep_time=not new_time), **request.data},
            context={"new_time": new_time, "new_expiry": "expiresAt" in request.data},
        )
        form.is_valid(raise_exception=True)
        changes = {k: v for k, v in form.validated_data.items() if getattr(message, k) != v}
        services.message_update(message=message, **changes)
        return envelope(message)

    @extend_schema(
        operation_id="cancel_scheduled_message", responses={200: CancelledEnvelope, 409: ErrorEnvelope, **ERRORS}
    )
    def delete(self, request, session_id, scheduled_id):
        services.message_cancel(message=self.message_of(request, session_id, scheduled_id))
        return Response({"success": True, "message": CANCELLED})


def current_values(message, *, keep_time: bool) -> dict:
    """The message as a request would give it; its time (as given: scheduledAt, or localTime + timeZone)
    only when the edit does not set one of its own."""
    values = {
        **content_of(message),
        "expiresAt": message.expires_at.isoformat() if message.expiry_from_client else None,
    }
    if keep_time and message.time_zone:
        values.update(localTime=local_time_of(message), timeZone=message.time_zone)
    elif keep_time:
        values["scheduledAt"] = message.scheduled_at.isoformat()
    return {key: value for key, value in values.items() if value}
