"""A campaign batch (services.message_dispatch_batch) keeps within its task's time limit, in this process
against the local provider: what it has not started in time goes back to be handed over alone."""

from datetime import timedelta

from django.utils import timezone

from scheduling import services
from scheduling.models import MessageStatus, ScheduledMessage

from .support import Reply


def test_a_slow_batch_hands_back_what_it_could_not_start_in_time(transactional_db, settings, provider):
    provider.reset()
    settings.SEND_TIME_LIMIT = 3  # a batch starts sends for a third of it: 1 s
    settings.TRANSPORTS = {**settings.TRANSPORTS, "slow-provider": {
        "BACKEND": "scheduling.transports.http.HttpTransport", "OPTIONS": {"URL": provider.url, "TIMEOUT": 5}}}
    session = services.session_create(name="campaign", transport="slow-provider").session
    due = timezone.now() + timedelta(hours=1)  # beyond the horizon: no task of its own
    messages = [services.message_schedule(session=session, scheduled_at=due, to="919988066776", text=f"slow {n}")
                for n in range(3)]
    for message in messages:
        provider.script(message.text, Reply(body={"messageId": f"id-{message.id}"}, delay=0.6))

    services.message_dispatch_batch(batch=[(m.id, m.version) for m in messages], worker="test")

    stored = {m.id: m for m in ScheduledMessage.objects.filter(pk__in=[m.id for m in messages])}
    sent = [m for m in stored.values() if m.status == MessageStatus.SENT]
    [handed_back] = [m for m in stored.values() if m.status == MessageStatus.PENDING]
    assert len(sent) == 2
    arrived = [r.body["id"] for r in provider.received if r.body.get("id") in stored]
    assert sorted(arrived) == sorted(m.id for m in sent)  # each sent once, the third not at all
    assert handed_back.attempts == 0 and handed_back.handed_over_at is not None
    assert handed_back.due_at <= timezone.now()
    assert handed_back.events.last().detail == "batch ran out of time; handed over alone"
