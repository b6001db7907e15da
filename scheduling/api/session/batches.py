"""Batches of the session API: many messages scheduled in one request, and cancelling what is left of them."""

from django.conf import settings
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

from ... import services
from ...validation import is_batch_id
from .. import idempotency
from ..parsers import ScheduleBulkJSONParser
from .errors import error_body
from .serializers import ErrorEnvelope, ScheduledMessageSerializer, ScheduleRequestSerializer
from .views import ERRORS, KEYED, SessionView


class ScheduleBulkRequestSerializer(serializers.Serializer):
    """What the bulk endpoint reads at first: a list; each message is then checked on its own."""

    messages = serializers.ListField(child=serializers.JSONField(allow_null=True), allow_empty=False)

    def validate_messages(self, messages):
        if len(messages) > settings.SCHEDULE_BULK_MAX:
            raise serializers.ValidationError(f"At most {settings.SCHEDULE_BULK_MAX} messages in one request.")
        return messages


class ScheduleBulkDocument(serializers.Serializer):
    """The bulk request as the OpenAPI schema shows it."""

    messages = ScheduleRequestSerializer(
        many=True, help_text=f"Each as POST /sessions/{{id}}/scheduled takes one; 1 to {settings.SCHEDULE_BULK_MAX}."
    )


class BulkFailureSerializer(serializers.Serializer):
    success = serializers.BooleanField(default=False)
    index = serializers.IntegerField(help_text="Its place in the request's messages, from 0.")
    error = serializers.CharField()
    details = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class ScheduledBulkEnvelope(serializers.Serializer):
    success = serializers.BooleanField(default=True)
    batchId = serializers.CharField()
    scheduled = PolymorphicProxySerializer(
        component_name="BulkEntry",
        serializers=[ScheduledMessageSerializer, BulkFailureSerializer],
        resource_type_field_name=None,
        many=True,
        help_text="One entry per message, in order: the message scheduled, or why it was not.",
    )


class BulkRefusedEnvelope(serializers.Serializer):
    success = serializers.BooleanField(default=False)
    error = serializers.CharField()
    details = serializers.DictField(required=False, help_text="When the request itself is malformed.")
    scheduled = BulkFailureSerializer(many=True, required=False, help_text="When every message is invalid: why each.")


class BatchCancelledEnvelope(serializers.Serializer):
    success = serializers.BooleanField(default=True)
    cancelled = serializers.IntegerField(help_text="Messages cancelled now.")
    notCancelled = serializers.IntegerField(help_text="Messages of the batch that were no longer pending.")


class ScheduledBulkView(SessionView):
    parser_classes = [ScheduleBulkJSONParser]

    @extend_schema(
        operation_id="schedule_messages_bulk",
        request=ScheduleBulkDocument,
        parameters=idempotency.PARAMETERS,
        description="Each message is checked on its own and answered in its place; the valid ones are stored "
        "together, as one batch.",
        responses={201: ScheduledBulkEnvelope, 413: ErrorEnvelope, **KEYED, **ERRORS, 400: BulkRefusedEnvelope},
    )
    def post(self, request, session_id):
        session = self.session_of(request, session_id)
        return idempotency.idempotent(request, session, lambda: schedule_all(request, session))


def schedule_all(request, session) -> Response:
    bulk = ScheduleBulkRequestSerializer(data=request.data)
    bulk.is_valid(raise_exception=True)
    forms = [ScheduleRequestSerializer(data=item) for item in bulk.validated_data["messages"]]
    valid = [form.is_valid() for form in forms]
    if not any(valid):  # nothing to store: no batch, and the key (if any) is free for the corrected request
        failures = [failure(index, form) for index, form in enumerate(forms)]
        body = {
            "success": False,
            "error": "No message could be scheduled: every one is invalid.",
            "scheduled": failures,
        }
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    batch_id, messages = services.messages_schedule_batch(
        session=session, contents=[form.validated_data for form, ok in zip(forms, valid, strict=True) if ok]
    )
    created = iter(messages)
    entries = [
        ScheduledMessageSerializer(next(created)).data if ok else failure(index, form)
        for index, (form, ok) in enumerate(zip(forms, valid, strict=True))
    ]
    return Response({"success": True, "batchId": batch_id, "scheduled": entries}, status=status.HTTP_201_CREATED)


def failure(index: int, form) -> dict:
    body = error_body(exceptions.ValidationError(form.errors))
    return {"success": False, "index": index, "error": body["error"], "details": body.get("details", {})}


class BatchView(SessionView):
    @extend_schema(
        operation_id="cancel_batch",
        description="Cancel every message of the batch that is still pending.",
        responses={200: BatchCancelledEnvelope, **ERRORS},
    )
    def delete(self, request, session_id, batch_id):
        session = self.session_of(request, session_id)
        outcome = services.batch_cancel(session=session, batch_id=batch_id) if is_batch_id(batch_id) else None
        if outcome is None:
            raise exceptions.NotFound("Batch not found")
        cancelled, not_cancelled = outcome
        return Response({"success": True, "cancelled": cancelled, "notCancelled": not_cancelled})
