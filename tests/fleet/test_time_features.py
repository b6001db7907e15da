"""Recurring series and quiet hours through the real fleet: the pump makes an occurrence and hands it over,
a worker sends it on time, once; a message due inside quiet hours goes out when they end."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from scheduling.models import ScheduledMessage

from ..factories import in_seconds, schedule_via_api

pytestmark = pytest.mark.dispatch


def test_a_recurring_series_sends_its_occurrence_on_time_once_as_an_ordinary_message(
    dispatch, provider, api, new_session
):
    first = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
    response = api.post(
        f"/sessions/{new_session.session.id}/recurring",
        {
            "to": "919988066776",
            "text": "Every minute",
            "rrule": "FREQ=MINUTELY",
            "timeZone": "UTC",
            "startAt": first.replace(tzinfo=None).isoformat(),
        },
        format="json",
    )
    series_id = response.json()["recurring"]["id"]

    deadline = time.time() + 10
    while not ScheduledMessage.objects.filter(recurring_id=series_id).exists() and time.time() < deadline:
        time.sleep(0.05)
    message = ScheduledMessage.objects.filter(recurring_id=series_id).order_by("occurrence_at").first()
    received = provider.wait_for(message.pk, timeout=10)
    time.sleep(1)

    assert len(provider.requests_for(message.pk)) == 1
    assert 0 <= received[0].at - first.timestamp() < 1.0
    assert received[0].body["text"] == "Every minute"
    shown = api.get(f"/sessions/{new_session.session.id}/scheduled/{message.pk}").json()["scheduled"]
    assert (shown["recurringId"], shown["scheduledAt"]) == (series_id, first.strftime("%Y-%m-%dT%H:%M:%S.000Z"))


def test_a_message_due_in_quiet_hours_goes_out_when_they_end(dispatch, provider, api, new_session, scheduled_url):
    end = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    start = end - timedelta(hours=1)
    api.put(
        f"/sessions/{new_session.session.id}/quiet-hours",
        {"start": f"{start:%H:%M:%S}", "end": f"{end:%H:%M:%S}", "timeZone": "UTC"},
        format="json",
    )

    message_id = schedule_via_api(api, scheduled_url, in_seconds(1), text="after the quiet")["id"]
    received = provider.wait_for(message_id, timeout=10)

    assert len(received) == 1
    assert 0 <= received[0].at - end.timestamp() < 1.0
