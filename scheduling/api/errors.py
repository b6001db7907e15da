"""Every error of the session API as `{"success": false, "error": "…"}` (plus field `details`)."""

from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large"


class DatabaseUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The database cannot be reached right now (a restart or failover); nothing was changed. Try again shortly."
    retry_after_seconds = 5


def as_api_exception(exc):
    """A database that went away (restart, failover) is a 503 to retry, not a 500: nothing was stored."""
    return DatabaseUnavailable() if isinstance(exc, (OperationalError, InterfaceError)) else exc


def drf_response(exc, context):
    """DRF's own handling (status, rollback, auth headers), with a database outage as a 503 + Retry-After."""
    response = drf_exception_handler(exc, context)
    if isinstance(exc, DatabaseUnavailable):
        response["Retry-After"] = str(exc.retry_after_seconds)
    return response


def exception_handler(exc, context):
    exc = as_api_exception(exc)
    response = drf_response(exc, context)
    if response is None:
        return None
    body = {"success": False, "error": summary(exc)}
    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
        body["details"] = {field: [str(m) for m in _as_list(msgs)] for field, msgs in exc.detail.items()}
    return Response(body, status=response.status_code, headers=_kept_headers(response))


def summary(exc) -> str:
    detail = getattr(exc, "detail", str(exc))
    if isinstance(detail, dict):
        return "; ".join(_field_message(field, msgs) for field, msgs in detail.items()) + "."
    if isinstance(detail, list):
        return "; ".join(str(item) for item in detail)
    return str(detail)


def _field_message(field, messages) -> str:
    text = " ".join(str(m).rstrip(".") for m in _as_list(messages))
    return text if field == "non_field_errors" else f"{field}: {text}"


def _as_list(messages):
    if isinstance(messages, dict):
        return [f"{key}: {' '.join(map(str, _as_list(value)))}" for key, value in messages.items()]
    return messages if isinstance(messages, list) else [messages]


def _kept_headers(response):
    return {name: response[name] for name in ("WWW-Authenticate", "Retry-After", "Allow") if response.has_header(name)}


def not_found(request, exception=None):
    return JsonResponse({"success": False, "error": "Not found"}, status=404)


def server_error(request):
    return JsonResponse({"success": False, "error": "Internal server error"}, status=500)
