"""The admin dashboard: each session's messages by status, what is due and what is late."""

import re
from datetime import UTC, datetime, timedelta

from django.contrib.auth.models import User
from django.test import Client

from scheduling.models import MessageStatus, ScheduledMessage

from ..factories import in_seconds, schedule_via_services, set_status


def test_it_shows_the_dashboard_per_session(operator, new_session):
    session = new_session.session
    schedule_via_services(session, in_seconds(600))
    late = schedule_via_services(session, in_seconds(3600))
    ScheduledMessage.objects.filter(pk=late.pk).update(due_at=datetime.now(UTC) - timedelta(minutes=5))
    failed = schedule_via_services(session, in_seconds(7200))
    set_status(failed.pk, MessageStatus.FAILED)

    response = operator.get("/admin/dashboard/")

    page = response.content.decode()
    row = re.search(r"<tr>\s*<td><a [^>]*>acme</a>.*?</tr>", page, re.DOTALL).group(0)
    cells = re.findall(r"<td>(?:<strong[^>]*>)?(\d+)", row)
    assert response.status_code == 200
    # pending, sending, sent, cancelled, failed, expired, due next hour, late, failed in the last day
    assert cells == ["2", "0", "0", "0", "1", "0", "1", "1", "1"]


def test_it_refuses_the_dashboard_to_non_staff(db):
    client = Client(REMOTE_ADDR="127.0.0.1")
    client.force_login(User.objects.create_user("visitor", password="pw-for-tests"))

    response = client.get("/admin/dashboard/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_it_links_the_dashboard_from_the_admin_index(operator):
    assert 'href="/admin/dashboard/"' in operator.get("/admin/").content.decode()
