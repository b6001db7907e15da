"""Recurring series of the session API: thin views over services.recurring_* and the selectors."""

import re

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response

from ... import selectors, services
from ...selectors import RECURRING_ID
from .. import idempotency
from .pagination import PageRequest, next_link
from .recurring import (
    RecurringEnvelope,
    RecurringListEnvelope,
    RecurringRequestSerializer,
    RecurringSerializer,
    current_values,
)
from .serializers import ErrorEnvelope
from .views import ERRORS, KEYED, SessionView

OCCURRENCES_DEFAULT, OCCURRENCES_MAX = 5, 50
WHOLE_NUMBER = re.compile(r"[0-9]{1,3}")


def shown(series, code=status.HTTP_200_OK, occurrences=OCCURRENCES_DEFAULT):
    upcoming = selectors.recurring_next_occurrences(series, now=timezone.now(), limit=occurrences)
    body = RecurringSerializer(series, context={"next": {series.pk: upcoming}}).data
    return Response({"success": True, "recurring": body}, status=code)


class RecurringSeriesView(SessionView):
    def series_of(self, request, session_id, recurring_id):
        series = selectors.recurring_get(session=self.session_of(request, session_id), recurring_id=recurring_id)
        if series is None:
            raise exceptions.NotFound("Recurring series not found")
        return series


class RecurringListView(RecurringSeriesView):
    @extend_schema(
        operation_id="create_recurring",
        request=RecurringRequestSerializer,
        parameters=idempotency.PARAMETERS,
        responses={201: RecurringEnvelope, 413: ErrorEnvelope, **KEYED, **ERRORS},
    )
    def post(self, request, session_id):
        session = self.session_of(request, session_id)
        return idempotency.idempotent(request, session, lambda: self.create(request, session))

    @staticmethod
    def create(request, session):
        form = RecurringRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        return shown(services.recurring_create(session=session, **form.validated_data), status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="list_recurring",
        parameters=[
            OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": 500}, description="Page size."),
            OpenApiParameter("cursor", str, description="From a previous page's `next`."),
        ],
        responses={200: RecurringListEnvelope, **ERRORS},
    )
    def get(self, request, session_id):
        page = PageRequest.of(request, is_id=lambda value: RECURRING_ID.fullmatch(value) is not None)
        found = selectors.recurring_list(session=self.session_of(request, session_id), after=page.after)
        rows = list(found[: page.limit + 1])
        listed, now = rows[: page.limit], timezone.now()
        upcoming = {s.pk: selectors.recurring_next_occurrences(s, now=now, limit=OCCURRENCES_DEFAULT) for s in listed}
        following = next_link(request, listed[-1].created_at, listed[-1].id) if len(rows) > page.limit else None
        body = RecurringSerializer(listed, many=True, context={"next": upcoming}).data
        return Response({"success": True, "recurring": body, "next": following})


class RecurringDetailView(RecurringSeriesView):
    @extend_schema(
        operation_id="get_recurring",
        parameters=[
            OpenApiParameter(
                "occurrences",
                {"type": "integer", "minimum": 1, "maximum": OCCURRENCES_MAX},
                description=f"How many next occurrences to show (default {OCCURRENCES_DEFAULT}).",
            )
        ],
        responses={200: RecurringEnvelope, **ERRORS},
    )
    def get(self, request, session_id, recurring_id):
        wanted = request.query_params.get("occurrences") or str(OCCURRENCES_DEFAULT)
        if not WHOLE_NUMBER.fullmatch(wanted) or not 1 <= int(wanted) <= OCCURRENCES_MAX:
            raise exceptions.ValidationError({"occurrences": [f"must be a whole number from 1 to {OCCURRENCES_MAX}."]})
        return shown(self.series_of(request, session_id, recurring_id), occurrences=int(wanted))

    @extend_schema(
        operation_id="update_recurring",
        request=RecurringRequestSerializer(partial=True),
        description="Change the content or the rule; occurrences already sent stay as they were.",
        responses={200: RecurringEnvelope, 409: ErrorEnvelope, **ERRORS},
    )
    def patch(self, request, session_id, recurring_id):
        series = self.series_of(request, session_id, recurring_id)
        if not isinstance(request.data, dict):
            raise exceptions.ValidationError("Expected a JSON object.")
        form = RecurringRequestSerializer(
            data={**current_values(series, request.data), **request.data},
            context={"new_start": "startAt" in request.data},
        )
        form.is_valid(raise_exception=True)
        changes = {name: value for name, value in form.validated_data.items() if _differs(series, name, value)}
        return shown(services.recurring_update(series=series, **changes))

    @extend_schema(
        operation_id="stop_recurring",
        description="Stop the series for good and cancel its occurrences still pending.",
        responses={200: RecurringEnvelope, **ERRORS},
    )
    def delete(self, request, session_id, recurring_id):
        return shown(services.recurring_stop(series=self.series_of(request, session_id, recurring_id)))


def _differs(series, name, value) -> bool:
    current = getattr(series, name)
    return current != (value.isoformat() if name == "start_wall" else value)


class RecurringPauseView(RecurringSeriesView):
    @extend_schema(
        operation_id="pause_recurring", request=None, responses={200: RecurringEnvelope, 409: ErrorEnvelope, **ERRORS}
    )
    def post(self, request, session_id, recurring_id):
        return shown(services.recurring_pause(series=self.series_of(request, session_id, recurring_id)))


class RecurringResumeView(RecurringSeriesView):
    @extend_schema(
        operation_id="resume_recurring", request=None, responses={200: RecurringEnvelope, 409: ErrorEnvelope, **ERRORS}
    )
    def post(self, request, session_id, recurring_id):
        return shown(services.recurring_resume(series=self.series_of(request, session_id, recurring_id)))
