"""The API rate limit of both API styles, per API key or omnimessage credential (ratelimits.py counts in
Redis): the session's own limit (admin) or API_RATE_LIMIT. Every answer to a request with valid credentials
carries X-RateLimit-Limit, -Remaining and -Reset; one over the limit is a 429 with Retry-After, in the API
style's error shape (each style's exception handler words it)."""

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter
from rest_framework.throttling import BaseThrottle

from .. import ratelimits
from ..models import ApiKey
from ..rates import parse_request_limit

RATE_LIMIT_EXCEEDED = "Rate limit exceeded"

# The answer's headers, as the OpenAPI schema documents them on every operation of both API styles.
HEADERS = [
    OpenApiParameter(
        name, int, location=OpenApiParameter.HEADER, response=True, description=f"{description} (API rate limit)."
    )
    for name, description in (
        ("X-RateLimit-Limit", "Requests allowed per period"),
        ("X-RateLimit-Remaining", "Requests that may be made now"),
        ("X-RateLimit-Reset", "Seconds until the whole limit is available again"),
    )
] + [
    OpenApiParameter(
        "Retry-After", int, location=OpenApiParameter.HEADER, response=[429], description="Seconds to wait."
    )
]


class ApiRateThrottle(BaseThrottle):
    def allow_request(self, request, view):
        credential = request.auth
        override = credential.session.api_rate_limit
        rate = parse_request_limit(override) if override else settings.API_RATE_LIMIT
        if rate is None:
            return True
        self.allowance = ratelimits.take(client_key(credential), rate)
        view.rate_allowance = self.allowance
        return self.allowance is None or self.allowance.allowed

    def wait(self):
        return self.allowance.retry_after_s


def client_key(credential) -> str:
    """A key's hash (a prefix of it) or a credential's username: unique, and no secret."""
    if isinstance(credential, ApiKey):
        return f"key:{credential.hashed_key[:32]}"
    return f"credential:{credential.username}"


class RateLimited:
    """For the views of both API styles: the limit checked after authentication, its headers on the answer."""

    throttle_classes = [ApiRateThrottle]

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        allowance = getattr(self, "rate_allowance", None)
        if allowance is not None:
            for name, value in allowance.headers().items():
                response[name] = value
        return response
