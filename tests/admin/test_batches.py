"""Cancelling whole batches (bulk requests) from the message list."""

from scheduling import services
from scheduling.models import MessageEvent, ScheduledMessage

from ..factories import TO, admin_action, in_hours, set_status

MESSAGES = "/admin/scheduling/scheduledmessage/"


def batch_of(session, size):
    contents = [{"scheduled_at": in_hours(1), "to": TO, "text": f"batch {n}"} for n in range(size)]
    return services.messages_schedule_batch(session=session, contents=contents)


def test_it_cancels_the_batches_of_the_selected_messages(operator, new_session):
    first_id, first = batch_of(new_session.session, 3)
    second_id, second = batch_of(new_session.session, 2)
    untouched_id, untouched = batch_of(new_session.session, 2)
    set_status(first[2].pk, "sent")

    page = admin_action(operator, MESSAGES, "cancel_batches", first[0], second[1])

    shown = [str(message) for message in page.context["messages"]]
    assert sorted(shown) == sorted(
        [f"{first_id}: 2 cancelled, 1 no longer pending.", f"{second_id}: 2 cancelled, 0 no longer pending."]
    )
    cancelled = ScheduledMessage.objects.filter(status="cancelled")
    assert set(cancelled.values_list("batch_id", flat=True)) == {first_id, second_id}
    assert not ScheduledMessage.objects.filter(batch_id=untouched_id, status="cancelled").exists()
    assert MessageEvent.objects.filter(to_status="cancelled", actor="admin:boss").count() == 4


def test_it_says_so_when_no_selected_message_came_in_a_batch(operator, new_session):
    lone = services.message_schedule(session=new_session.session, scheduled_at=in_hours(1), to=TO, text="alone")

    page = admin_action(operator, MESSAGES, "cancel_batches", lone)

    assert [str(message) for message in page.context["messages"]] == [
        "None of the selected messages came in a batch (a bulk request)."
    ]
    assert ScheduledMessage.objects.get(pk=lone.pk).status == "pending"


def test_it_finds_a_batchs_messages_by_the_batch_id(operator, new_session):
    batch_id, messages = batch_of(new_session.session, 2)
    batch_of(new_session.session, 1)

    page = operator.get(MESSAGES, {"q": batch_id})

    assert sorted(message.id for message in page.context["cl"].result_list) == sorted(m.id for m in messages)
