from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from ... import services


class OmnimessageAuthentication(authentication.BasicAuthentication):
    """HTTP basic auth with a session's Messente-compatible credentials; request.auth is the credential."""

    www_authenticate_realm = "omnimessage"

    def authenticate_credentials(self, userid, password, request=None):
        credential = services.api_credential_authenticate(username=userid, password=password)
        if credential is None:
            raise exceptions.AuthenticationFailed("Invalid username or password")
        if not credential.session.active:
            raise exceptions.AuthenticationFailed("This session is disabled")
        return (None, credential)


class OmnimessageAuthScheme(OpenApiAuthenticationExtension):
    target_class = OmnimessageAuthentication
    name = "OmnimessageBasicAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "basic",
            "description": "The session's omnimessage API username and password.",
        }
