"""Locust users for bench/api.py: one class per scenario, each a closed loop (no wait between requests).

    locust -f bench/locustfile.py --headless -u 8 -r 8 -t 20s --host http://127.0.0.1:PORT \\
        --session-id ID --api-key wask_… [--api-username om_… --api-password …] \\
        [--list-limit 100] [--ids-file ids.txt] [--results-file out.json] CreateUser

Scenarios (the class named on the command line):
    CreateUser      POST /sessions/{id}/scheduled, a text message a day ahead (beyond the dispatch horizon)
    ListUser        GET /sessions/{id}/scheduled?limit=N, following `next` to the end, then from the start again
    CancelUser      DELETE /sessions/{id}/scheduled/{scheduledId}, each id of --ids-file once
    OmniCreateUser  POST /v1/omnimessage (basic auth), sms → viber → whatsapp, a day ahead

Any answer outside 2xx, a connection error, or a 2xx whose body is not what the API documents, is a
failure. Besides locust's own statistics (--csv), every request is recorded (start, latency, status)
and written to --results-file when locust exits, so that bench/api.py computes exact percentiles
(locust rounds its response-time buckets to 2 significant digits).
"""

import base64
import itertools
import json
import os
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from locust import constant, events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopUser

TO = "919988066776"
OMNI_TO = "+37255555555"
AHEAD = timedelta(days=1)
# gunicorn stands where it does in production, behind a TLS-terminating proxy: without this header the
# production settings (SECURE_SSL_REDIRECT) answer every request with a 301 to https.
PROXY = {"X-Forwarded-Proto": "https"}

records = []  # (name, start epoch s, latency ms, status code or 0, ok)
error_samples = {}  # (name, status) -> first few answers, for the report
ids = deque()
counter = itertools.count()
exhausted = {"cancel_ids": False}


@events.init_command_line_parser.add_listener
def _arguments(parser):
    env = os.environ.get
    parser.add_argument("--session-id", default=env("BENCH_SESSION_ID", ""), help="the session's id")
    parser.add_argument("--api-key", default=env("BENCH_API_KEY", ""), help="the session's wask_… key")
    parser.add_argument("--api-username", default=env("BENCH_API_USERNAME", ""), help="omnimessage basic-auth user")
    parser.add_argument("--api-password", default=env("BENCH_API_PASSWORD", ""), help="omnimessage basic-auth password")
    parser.add_argument("--list-limit", type=int, default=100, help="page size of ListUser")
    parser.add_argument("--bulk-size", type=int, default=10, help="omnimessages per request of OmniBulkUser")
    parser.add_argument("--ids-file", default="", help="message ids for CancelUser, one a line")
    parser.add_argument("--results-file", default="", help="where to write every request's record on exit")


@events.init.add_listener
def _load_ids(environment, **_):
    options = environment.parsed_options
    if options and options.ids_file:
        with open(options.ids_file) as lines:
            ids.extend(line.strip() for line in lines if line.strip())


@events.request.add_listener
def _record(request_type, name, response_time, response_length, response=None, exception=None, start_time=None, **_):
    status = getattr(response, "status_code", 0) or 0
    ok = exception is None
    records.append((name, start_time or time.time() - response_time / 1000, response_time, status, ok))
    if not ok:
        samples = error_samples.setdefault(f"{name} {status}", [])
        if len(samples) < 5:
            body = ""
            try:
                body = (response.text or "")[:500] if response is not None else ""
            except Exception:  # a body that cannot be decoded is no reason to lose the record
                pass
            samples.append({"exception": str(exception)[:500], "body": body, "url": getattr(response, "url", None)})


@events.quitting.add_listener
def _write(environment, **_):
    options = environment.parsed_options
    if options and options.results_file:
        with open(options.results_file, "w") as out:
            json.dump(
                {"records": records, "error_samples": error_samples, "exhausted": exhausted, "ids_left": len(ids)}, out
            )


def when():
    return (datetime.now(UTC) + AHEAD).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check(response, expected_status, predicate):
    """Mark a response failed unless its status is 2xx, the one documented, and its body looks right."""
    if not 200 <= response.status_code < 300:
        response.failure(f"HTTP {response.status_code}")
        return
    if response.status_code != expected_status:
        response.failure(f"HTTP {response.status_code}, expected {expected_status}")
        return
    try:
        body = response.json()
    except Exception:
        response.failure("the body is not JSON")
        return
    if not predicate(body):
        response.failure(f"unexpected body: {response.text[:200]}")
        return
    response.success()


class ClosedLoopUser(FastHttpUser):
    """A closed loop: the next request as soon as the answer is in (network and connect timeouts of 60 s)."""

    abstract = True
    wait_time = constant(0)
    network_timeout = 60.0
    connection_timeout = 60.0


class SessionUser(ClosedLoopUser):
    abstract = True

    def on_start(self):
        options = self.environment.parsed_options
        self.base = f"/sessions/{options.session_id}/scheduled"
        self.headers = {"X-API-Key": options.api_key, **PROXY}


class CreateUser(SessionUser):
    @task
    def create(self):
        body = {"to": TO, "text": f"bench message {next(counter)}", "scheduledAt": when()}
        with self.client.post(
            self.base,
            json=body,
            headers=self.headers,
            name="POST /sessions/{id}/scheduled",
            catch_response=True,
            allow_redirects=False,
        ) as response:
            check(
                response, 201, lambda b: b.get("success") is True and b.get("scheduled", {}).get("status") == "pending"
            )


class ListUser(SessionUser):
    def on_start(self):
        super().on_start()
        self.limit = self.environment.parsed_options.list_limit
        self.first = f"{self.base}?limit={self.limit}"
        self.next = self.first

    @task
    def page(self):
        with self.client.get(
            self.next,
            headers=self.headers,
            name=f"GET /sessions/{{id}}/scheduled?limit={self.limit}",
            catch_response=True,
            allow_redirects=False,
        ) as response:
            check(
                response,
                200,
                lambda b: (
                    b.get("success") is True
                    and isinstance(b.get("scheduled"), list)
                    and len(b["scheduled"]) <= self.limit
                ),
            )
            following = None
            if response.status_code == 200:
                try:
                    following = response.json().get("next")
                except Exception:
                    pass
        if following:
            parts = urlsplit(following)  # the link is absolute: keep the path and query, send them here
            self.next = f"{parts.path}?{parts.query}"
        else:
            self.next = self.first


class CancelUser(SessionUser):
    @task
    def cancel(self):
        try:
            message_id = ids.popleft()
        except IndexError:
            exhausted["cancel_ids"] = True
            raise StopUser() from None
        with self.client.delete(
            f"{self.base}/{message_id}",
            headers=self.headers,
            name="DELETE /sessions/{id}/scheduled/{scheduledId}",
            catch_response=True,
            allow_redirects=False,
        ) as response:
            check(response, 200, lambda b: b.get("success") is True)


class OmniCreateUser(ClosedLoopUser):
    def on_start(self):
        options = self.environment.parsed_options
        token = base64.b64encode(f"{options.api_username}:{options.api_password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", **PROXY}

    @task
    def create(self):
        n = next(counter)
        with self.client.post(
            "/v1/omnimessage",
            json=omnimessage(n),
            headers=self.headers,
            name="POST /v1/omnimessage",
            catch_response=True,
            allow_redirects=False,
        ) as response:
            check(response, 201, lambda b: bool(b.get("omnimessage_id")) and len(b.get("messages", [])) == 3)


class OmniBulkUser(OmniCreateUser):
    """Messente's bulk endpoint: --bulk-size omnimessages per request, every one must be scheduled."""

    @task
    def create(self):
        size = self.environment.parsed_options.bulk_size
        body = {"messages": [omnimessage(next(counter)) for _ in range(size)]}
        with self.client.post(
            "/v1/omnimessages",
            json=body,
            headers=self.headers,
            name=f"POST /v1/omnimessages x{size}",
            catch_response=True,
            allow_redirects=False,
        ) as response:
            check(
                response,
                201,
                lambda b: len(b.get("messages", [])) == size and all(m.get("omnimessage_id") for m in b["messages"]),
            )


def omnimessage(n):
    return {
        "to": OMNI_TO,
        "time_to_send": when(),
        "messages": [
            {"channel": "sms", "text": f"bench omnimessage {n}", "sender": "Bench", "ttl": 300},
            {"channel": "viber", "text": f"bench omnimessage {n}", "validity": 10},
            {"channel": "whatsapp", "text": {"body": f"bench omnimessage {n}"}},
        ],
    }
