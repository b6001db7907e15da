"""A database that went away (a restart, a failover) as both API styles answer it: a 503 with
Retry-After, not a 500. The request changed nothing (its transaction could not commit), so a client
may simply send it again."""

from django.db import InterfaceError, OperationalError
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler


class DatabaseUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = (
        "The database cannot be reached right now (a restart or failover); nothing was changed. Try again shortly."
    )
    retry_after_seconds = 5


def as_api_exception(exc):
    return DatabaseUnavailable() if isinstance(exc, (OperationalError, InterfaceError)) else exc


def drf_response(exc, context):
    """DRF's own handling (status, rollback, auth headers), with a database outage's Retry-After."""
    response = drf_exception_handler(exc, context)
    if isinstance(exc, DatabaseUnavailable):
        response["Retry-After"] = str(exc.retry_after_seconds)
    return response
