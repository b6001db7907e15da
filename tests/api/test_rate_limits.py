"""API rate limits per API key or omnimessage credential, counted in Redis for every web process: the
headers on every answer, the 429 of each API style, a session's own limit, and what happens without Redis."""

import os
import subprocess
import sys

import pytest
import requests

from scheduling import ratelimits, services
from scheduling.models import ScheduledMessage, Session
from scheduling.rates import parse_request_limit

from ..factories import as_seed, basic_auth, client_with, in_hours, key_client
from ..servers import ROOT, free_port

BODY = {"to": "919988066776", "text": "Hello", "scheduledAt": as_seed(in_hours(1))}


@pytest.fixture
def limited(settings):
    """Three requests a minute per key: one every 20 s, or three at once."""
    settings.API_RATE_LIMIT = parse_request_limit("3/min")


def limits(response):
    return [response.get(f"X-RateLimit-{name}") for name in ("Limit", "Remaining", "Reset")]


def test_every_answer_carries_the_limit_and_what_is_left(limited, api, scheduled_url):
    answers = [api.get(scheduled_url), api.post(scheduled_url, BODY, format="json"), api.get(scheduled_url + "/nope")]

    assert [response.status_code for response in answers] == [200, 201, 404]
    assert [limits(response) for response in answers] == [["3", "2", "20"], ["3", "1", "40"], ["3", "0", "60"]]


def test_over_the_limit_is_a_429_with_retry_after_and_nothing_is_stored(limited, api, scheduled_url):
    for _ in range(3):
        api.get(scheduled_url)

    response = api.post(scheduled_url, BODY, format="json")

    body = response.json()
    assert response.status_code == 429
    assert body == {"success": False, "error": "Rate limit exceeded", "retryAfter": body["retryAfter"]}
    assert 19 <= body["retryAfter"] <= 20  # the next of three a minute, 20 s after the first
    assert response["Retry-After"] == str(body["retryAfter"])
    assert limits(response)[:2] == ["3", "0"]
    assert not ScheduledMessage.objects.exists()


def test_a_refused_request_counts_too(limited, api, scheduled_url):
    api.post(scheduled_url, {"to": "nobody"}, format="json")

    response = api.get(scheduled_url)

    assert limits(response)[1] == "1"


def test_the_messente_api_answers_429_in_its_own_shape(limited, account):
    messente = client_with(HTTP_AUTHORIZATION=basic_auth(account.api_username, account.api_password))
    for _ in range(3):
        messente.get("/v1/omnimessage/sched_unknown/status")

    response = messente.post("/v1/omnimessage", {"to": "+37255555555", "messages": []}, format="json")

    wait = int(response["Retry-After"])
    assert response.status_code == 429
    assert response.json() == {
        "errors": [
            {
                "title": "Rate limit exceeded",
                "detail": f"Too many requests: retry after {wait} s",
                "code": "102",
                "source": None,
            }
        ]
    }
    assert limits(response)[:2] == ["3", "0"]


def test_a_bulk_request_counts_once(limited, account):
    messente = client_with(HTTP_AUTHORIZATION=basic_auth(account.api_username, account.api_password))
    omnimessage = {"to": "+37255555555", "messages": [{"channel": "sms", "text": "hi"}]}

    response = messente.post("/v1/omnimessages", {"messages": [omnimessage] * 5}, format="json")

    assert response.status_code == 201
    assert limits(response)[1] == "2"


def test_each_key_has_its_own_allowance(limited, new_session, scheduled_url):
    _, second_key = services.api_key_create(session=new_session.session)
    first = key_client(new_session.api_key)
    for _ in range(3):
        first.get(scheduled_url)

    assert first.get(scheduled_url).status_code == 429
    assert key_client(second_key).get(scheduled_url).status_code == 200


def test_a_sessions_own_limit_wins_over_the_setting(limited, new_session, api, scheduled_url):
    Session.objects.filter(pk=new_session.session.pk).update(api_rate_limit="1/h")

    first, second = api.get(scheduled_url), api.get(scheduled_url)

    assert limits(first) == ["1", "0", "3600"]
    assert second.status_code == 429


def test_a_session_may_be_unlimited(limited, new_session, api, scheduled_url):
    Session.objects.filter(pk=new_session.session.pk).update(api_rate_limit="0")

    answers = [api.get(scheduled_url) for _ in range(5)]

    assert {response.status_code for response in answers} == {200}
    assert limits(answers[-1]) == [None, None, None]


def test_the_limit_is_shared_by_every_web_process(limited, live_server, api, new_session, scheduled_url):
    """Two servers of one service (the live server's thread and this process's handler) count together."""
    other = f"{live_server.url}{scheduled_url}"
    api.get(scheduled_url)
    requests.get(other, headers={"X-API-Key": new_session.api_key}, timeout=10)
    api.get(scheduled_url)

    response = requests.get(other, headers={"X-API-Key": new_session.api_key}, timeout=10)

    assert response.status_code == 429


@pytest.fixture
def redis_gone(settings):
    """Redis unreachable (nothing listens on its port) for the web process's rate limit."""
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    ratelimits._client.cache_clear()
    ratelimits._script.cache_clear()
    yield
    ratelimits._client.cache_clear()
    ratelimits._script.cache_clear()


def test_without_redis_requests_go_through_unlimited(limited, redis_gone, api, scheduled_url):
    answers = [api.post(scheduled_url, BODY, format="json") for _ in range(4)]

    assert [response.status_code for response in answers] == [201] * 4
    assert limits(answers[-1]) == [None, None, None]


def settings_of(**env):
    """The API_RATE_LIMIT a process started with `env` gets, or how it refuses to start."""
    environment = {key: value for key, value in os.environ.items() if key != "API_RATE_LIMIT"}
    done = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.API_RATE_LIMIT)"],
        cwd=ROOT,
        env={**environment, "DJANGO_SETTINGS_MODULE": "project.settings", "DEBUG": "1", **env},
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or done.stderr.strip().splitlines()[-1]


def test_the_default_limit_is_100_a_minute_and_0_turns_it_off():
    assert settings_of() == "Rate(count=100.0, period_s=60, text='100/min')"
    assert settings_of(API_RATE_LIMIT="0") == "None"
    assert "API_RATE_LIMIT is invalid" in settings_of(API_RATE_LIMIT="2.5/s")
