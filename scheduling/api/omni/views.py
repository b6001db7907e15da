"""The Messente-compatible Omnimessage API: thin views over the same services as the session API."""

from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from ... import selectors, services
from ...models import ScheduledMessage
from .. import idempotency, throttling
from ..parsers import BulkJSONParser
from ..throttling import RateLimited
from .auth import OmnimessageAuthentication
from .errors import exception_handler, validation_errors
from .serializers import BulkOmnimessageSerializer, OmnimessageSerializer

ERROR = inline_serializer("OmnimessageError", {"errors": serializers.ListField(child=serializers.DictField())})
CREATED = inline_serializer(
    "OmnimessageCreated",
    {
        "messages": serializers.ListField(child=serializers.DictField()),
        "to": serializers.CharField(),
        "omnimessage_id": serializers.CharField(),
    },
)
BULK_CREATED = inline_serializer(
    "BulkOmnimessageCreated",
    {
        "messages": serializers.ListField(
            child=serializers.DictField(),
            help_text="Per omnimessage, in the order sent: "
            'what POST /v1/omnimessage answers, or its errors ({"errors": […]}).',
        ),
    },
)
KEYED = {409: ERROR, 422: ERROR}  # an Idempotency-Key in use, or used with another request
LIMITED = {429: ERROR}  # over the API rate limit
REPORT = inline_serializer(
    "OmnimessageStatus",
    {
        "statuses": serializers.ListField(child=serializers.DictField()),
        "to": serializers.CharField(),
        "omnimessage_id": serializers.CharField(),
    },
)


class HasCredential(BasePermission):
    def has_permission(self, request, view):
        if request.auth is None:
            raise exceptions.NotAuthenticated("Missing basic auth credentials")
        return True


@extend_schema(parameters=throttling.HEADERS)
class OmnimessageBase(RateLimited, APIView):
    authentication_classes = [OmnimessageAuthentication]
    permission_classes = [HasCredential]

    def get_exception_handler(self):
        return exception_handler

    def omnimessage(self, request, omnimessage_id) -> ScheduledMessage:
        message = selectors.omnimessage_get(session=request.auth.session, omnimessage_id=omnimessage_id)
        if message is None:
            raise exceptions.NotFound(f"Omnimessage {omnimessage_id} not found")
        return message


class OmnimessageCreateView(OmnimessageBase):
    @extend_schema(
        operation_id="omnimessage_send",
        request=OmnimessageSerializer,
        parameters=idempotency.PARAMETERS,
        responses={201: CREATED, 400: ERROR, 401: ERROR, **KEYED, **LIMITED},
    )
    def post(self, request):
        return idempotency.idempotent(request, request.auth.session, lambda: self.schedule_one(request))

    @staticmethod
    def schedule_one(request):
        form = OmnimessageSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        return Response(schedule(request.auth.session, form.validated_data), status=201)


class OmnimessageBulkCreateView(OmnimessageBase):
    """Messente's bulk endpoint: each omnimessage is checked on its own and answered in its place,
    scheduled or with its errors; the valid ones are stored together in one transaction."""

    parser_classes = [BulkJSONParser]

    @extend_schema(
        operation_id="omnimessage_send_bulk",
        request=BulkOmnimessageSerializer,
        parameters=idempotency.PARAMETERS,
        responses={201: BULK_CREATED, 400: ERROR, 401: ERROR, 413: ERROR, **KEYED, **LIMITED},
    )
    def post(self, request):
        return idempotency.idempotent(request, request.auth.session, lambda: self.schedule_all(request))

    @staticmethod
    def schedule_all(request):
        bulk = BulkOmnimessageSerializer(data=request.data)
        bulk.is_valid(raise_exception=True)
        forms = [OmnimessageSerializer(data=item) for item in bulk.validated_data["messages"]]
        with transaction.atomic():
            answers = [
                schedule(request.auth.session, form.validated_data)
                if form.is_valid()
                else {"errors": validation_errors(exceptions.ValidationError(form.errors))}
                for form in forms
            ]
        return Response({"messages": answers}, status=201)


def schedule(session, data: dict) -> dict:
    """Schedule one validated omnimessage; Messente's answer to it."""
    message = services.omnimessage_schedule(
        session=session,
        to=data["to"],
        channels=data["messages"],
        scheduled_at=data.get("time_to_send") or timezone.now(),
        dlr_url=data.get("dlr_url", ""),
        priority=data.get("priority", ""),
        text_store=data.get("text_store", ""),
    )
    channels = [
        {"channel": c.channel, "message_id": str(c.channel_message_id), "sender": c.sender}
        for c in selectors.omnimessage_channels(message)
    ]
    return {"messages": channels, "to": f"+{message.to}", "omnimessage_id": message.id}


class OmnimessageCancelView(OmnimessageBase):
    @extend_schema(operation_id="omnimessage_cancel", responses={202: None, 401: ERROR, 404: ERROR, **LIMITED})
    def delete(self, request, omnimessage_id):
        services.omnimessage_cancel(message=self.omnimessage(request, omnimessage_id))
        return Response(status=status.HTTP_202_ACCEPTED)


class OmnimessageStatusView(OmnimessageBase):
    @extend_schema(operation_id="omnimessage_status", responses={200: REPORT, 401: ERROR, 404: ERROR, **LIMITED})
    def get(self, request, omnimessage_id):
        message = self.omnimessage(request, omnimessage_id)
        statuses = [
            {
                key: value
                for key, value in services.delivery_report(message, attempt).items()
                if key not in ("to", "omnimessage_id")
            }
            for attempt in selectors.omnimessage_channels(message, reached_only=True)
        ]
        return Response({"statuses": statuses, "to": f"+{message.to}", "omnimessage_id": message.id})
