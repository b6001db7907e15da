"""Every outbound HTTP session of the service: webhooks, delivery reports and the providers' transports.

Knows nothing of the models. What every call out needs, in one place: no proxy or .netrc from the
environment, a timeout and no redirects by default, `Retry-After` read one way, and, for URLs that a
client gave us, the SSRF guard. The guard resolves the host first, checks every address it has, and
connects to a checked address: no handshake ever reaches an internal host (checking the socket after
connecting, as before, still let any client make workers open connections to any internal port).
"""

import socket

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, InvalidHeader, NameResolutionError, NewConnectionError
from urllib3.util import connection, parse_url
from urllib3.util.retry import Retry

from .validation import is_public_address


class ForbiddenDestination(Exception):
    """The URL resolved to an address the service must not call (private, loopback, link-local, metadata)."""


class OutboundSession(requests.Session):
    """A requests.Session with the service's defaults: every call has a timeout and follows no redirect."""

    def __init__(self, timeout):
        super().__init__()
        self.trust_env = False  # a proxy would hide the address we check; the lookups cost a quarter of a send
        self.timeout = timeout

    def request(self, method, url, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("allow_redirects", False)
        return super().request(method, url, **kwargs)


def http_session(*, timeout, guarded: bool, connections: int = 10) -> OutboundSession:
    """`guarded` for URLs a client gave (webhooks, dlr_url): only public addresses are connected to.
    Providers' URLs come from the operator's settings, and are often on a private network.
    `connections`: keep-alive connections kept per host, for a session shared by that many threads."""
    http = OutboundSession(timeout)
    adapter = (_GuardedAdapter if guarded else HTTPAdapter)(
        max_retries=0, pool_connections=connections, pool_maxsize=connections
    )
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    return http


def retry_after_seconds(response: requests.Response) -> float | None:
    """A `Retry-After` in seconds or as an HTTP date; an unparseable one is ignored, as browsers do."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, Retry().parse_retry_after(value))
    except (InvalidHeader, ValueError, OverflowError):
        return None


def public_addresses(host: str, port: int) -> list[tuple]:
    """Every address `host` resolves to (getaddrinfo's tuples), if each one is public."""
    resolved = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    for *_, sockaddr in resolved:
        if not is_public_address(sockaddr[0]):
            raise ForbiddenDestination(
                f"refused: {host} resolves to {sockaddr[0]}, a private, loopback or link-local address "
                "(set WEBHOOK_ALLOW_PRIVATE=1 for local development)"
            )
    return resolved


def check_destination(url: str) -> None:
    """For a URL that another party fetches (media, which the provider downloads): refuse it if its host
    resolves to an internal address now. A name that does not resolve here is left to the fetcher."""
    parsed = parse_url(url)
    try:
        public_addresses(parsed.host or "", parsed.port or 443)
    except socket.gaierror:
        return


class _GuardedConnectionMixin:
    def _new_conn(self):
        try:
            resolved = public_addresses(self._dns_host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        failure = None
        for *_, sockaddr in resolved:  # connect to the checked address, so DNS cannot answer differently now
            try:
                return connection.create_connection(
                    sockaddr[:2], self.timeout, source_address=self.source_address, socket_options=self.socket_options
                )
            except TimeoutError:
                failure = ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                )
            except OSError as exc:
                failure = NewConnectionError(self, f"Failed to establish a new connection: {exc}")
        raise failure


class _GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass  # TLS still verifies the certificate against the URL's host name (self.host), not the address


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}
