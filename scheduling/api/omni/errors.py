"""Errors in Messente's shape: {"errors": [{"title", "detail", "code", "source"}]}, codes as strings."""

from rest_framework import exceptions
from rest_framework.response import Response

from ... import services
from ..throttling import RATE_LIMIT_EXCEEDED
from ..unavailable import as_api_exception, drf_response

NOT_FOUND = ("Not found", "101")
FORBIDDEN = ("Forbidden", "102")
UNAUTHORIZED = ("Unauthorized", "103")
INTERNAL = ("Internal Server Error", "104")
INVALID = ("Invalid data", "105")
MISSING = ("Missing data", "106")
METHOD_NOT_ALLOWED = ("Method not allowed", "107")

UNAVAILABLE = ("Service Unavailable", "104")
RATE_LIMITED = (RATE_LIMIT_EXCEEDED, "102")  # Messente has no code of its own for it: refused, as 102 is

BY_STATUS = {
    401: UNAUTHORIZED,
    403: FORBIDDEN,
    404: NOT_FOUND,
    405: METHOD_NOT_ALLOWED,
    429: RATE_LIMITED,
    503: UNAVAILABLE,
}


def exception_handler(exc, context):
    exc = as_api_exception(no_longer_scheduled(exc) if isinstance(exc, services.NotAllowed) else exc)
    response = drf_response(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = validation_errors(exc)
    else:
        title, code = BY_STATUS.get(response.status_code, INVALID if response.status_code < 500 else INTERNAL)
        errors = [item(title, code, detail(exc), None)]
    headers = {
        name: response[name] for name in ("WWW-Authenticate", "Allow", "Retry-After") if response.has_header(name)
    }
    return Response({"errors": errors}, status=response.status_code, headers=headers)


def detail(exc) -> str:
    if isinstance(exc, exceptions.Throttled):
        return f"Too many requests: retry after {exc.wait} s"
    return str(getattr(exc, "detail", exc))


def no_longer_scheduled(refused) -> exceptions.NotFound:
    """Messente answers 404 for a message that can no longer be cancelled, as for one that never was."""
    return exceptions.NotFound(f"Omnimessage {refused.message_id} is no longer scheduled ({refused.status})")


def validation_errors(exc: exceptions.ValidationError) -> list[dict]:
    details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
    found = []
    for field, messages in details.items():
        for message in messages if isinstance(messages, list) else [messages]:
            title, code = MISSING if getattr(message, "code", "") in ("required", "null") else INVALID
            source = "payload" if field == "non_field_errors" else f"payload[{field}]"
            found.append(item(title, code, f"{field}: {message}" if source != "payload" else str(message), source))
    return found


def item(title, code, detail, source):
    return {"title": title, "detail": detail, "code": code, "source": source}
