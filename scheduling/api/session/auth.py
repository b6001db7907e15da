from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from ... import services


class SessionKeyAuthentication(authentication.BaseAuthentication):
    """`X-API-Key: wask_…` or `Authorization: Bearer wask_…`; request.auth becomes the ApiKey."""

    def authenticate(self, request):
        raw = request.headers.get("X-API-Key") or self._bearer(request)
        if not raw:
            return None
        api_key = services.api_key_authenticate(raw=raw.strip())
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key")
        if not api_key.session.active:
            raise exceptions.PermissionDenied("This session is disabled")
        return (None, api_key)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'

    @staticmethod
    def _bearer(request):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return token if scheme.lower() == "bearer" else ""


class HasSessionKey(permissions.BasePermission):
    message = "Missing API key: send it as X-API-Key or Authorization: Bearer"

    def has_permission(self, request, view):
        if request.auth is None:
            raise exceptions.NotAuthenticated(self.message)
        return True


class SessionKeyScheme(OpenApiAuthenticationExtension):
    """Tells drf-spectacular how the session key is sent (the X-API-Key header, or a bearer token)."""

    target_class = SessionKeyAuthentication
    name = ["ApiKeyHeader", "BearerKey"]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "The session's key, `wask_…`."},
            {"type": "http", "scheme": "bearer", "description": "The same key as `Authorization: Bearer wask_…`."},
        ]

    def get_security_requirement(self, auto_schema):
        return [{"ApiKeyHeader": []}, {"BearerKey": []}]  # either one, not both
