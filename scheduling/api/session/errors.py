"""Every error of the session API as `{"success": false, "error": "…"}` (plus field `details`); a
refused change of a message (services.NotAllowed) is a 409 here, whichever view it came from."""

from rest_framework import exceptions, status
from rest_framework.response import Response

from ... import services
from ...recurrence import RuleError
from ..throttling import RATE_LIMIT_EXCEEDED
from ..unavailable import as_api_exception, drf_response


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Conflict"


def exception_handler(exc, context):
    if isinstance(exc, RuleError):  # a recurring rule found to have no occurrence once all is known
        exc = exceptions.ValidationError({exc.field or "rrule": [str(exc)]})
    exc = Conflict(str(exc)) if isinstance(exc, services.NotAllowed) else as_api_exception(exc)
    response = drf_response(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.Throttled):
        body = {"success": False, "error": RATE_LIMIT_EXCEEDED, "retryAfter": exc.wait}
    else:
        body = error_body(exc)
    return Response(body, status=response.status_code, headers=_kept_headers(response))


def error_body(exc) -> dict:
    """`{"success": false, "error": …}`, with `details` per field for a validation error."""
    body = {"success": False, "error": summary(exc)}
    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
        body["details"] = {field: [str(m) for m in _as_list(msgs)] for field, msgs in exc.detail.items()}
    return body


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
