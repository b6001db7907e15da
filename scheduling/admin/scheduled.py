"""Scheduled messages: read-only, with their history and channels; actions through the services."""

from functools import partial

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils import timezone

from .. import services
from ..models import (
    ChannelAttempt,
    MessageEvent,
    ScheduledMessage,
)
from ..validation import check_schedule_window, format_instant, parse_instant
from .common import ReadOnlyInline, apply_to_each


class RescheduleForm(forms.Form):
    scheduled_at = forms.CharField(label="New time (ISO 8601; without an offset it is UTC)")

    def clean_scheduled_at(self):
        when = parse_instant(self.cleaned_data["scheduled_at"])
        check_schedule_window(when, timezone.now())
        return when


class ChannelAttemptInline(ReadOnlyInline):
    model = ChannelAttempt
    fields = readonly_fields = [
        "position",
        "channel",
        "sender",
        "ttl_seconds",
        "started_at",
        "status",
        "error",
        "status_at",
        "channel_message_id",
    ]


class MessageEventInline(ReadOnlyInline):
    model = MessageEvent
    fields = readonly_fields = ["created_at", "from_status", "to_status", "attempt", "actor", "detail"]


@admin.register(ScheduledMessage)
class ScheduledMessageAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "session",
        "to",
        "type",
        "status",
        "scheduled",
        "sent",
        "lateness",
        "attempts",
        "batch_id",
        "recurring",
    ]
    list_filter = ["status", "type", "session", ("scheduled_at", admin.DateFieldListFilter)]
    search_fields = ["id", "to", "provider_message_id", "=batch_id", "recurring__id"]
    date_hierarchy = "scheduled_at"
    list_select_related = ["session"]
    readonly_fields = [field.name for field in ScheduledMessage._meta.fields]
    inlines = [ChannelAttemptInline, MessageEventInline]
    actions = ["cancel", "cancel_batches", "send_now", "retry", "reschedule"]

    # Read-only: status moves only through the actions (the services); the history is never deleted.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(ordering="scheduled_at", description="scheduled (UTC)")
    def scheduled(self, message):
        return format_instant(message.scheduled_at)

    @admin.display(ordering="sent_at", description="sent (UTC)")
    def sent(self, message):
        return format_instant(message.sent_at) or "-"

    @admin.display(description="lateness")
    def lateness(self, message):
        if message.sent_at is None:
            return "-"
        return f"{(message.sent_at - message.scheduled_at).total_seconds():.3f} s"

    @admin.action(description="Reschedule (pending only)")
    def reschedule(self, request, queryset):
        form = RescheduleForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return TemplateResponse(
                request,
                "admin/scheduling/reschedule.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Reschedule",
                    "form": form,
                    "selected": queryset,
                },
            )
        self.apply(
            request,
            queryset,
            partial(services.message_update, scheduled_at=form.cleaned_data["scheduled_at"]),
            "rescheduled",
        )
        return None

    @admin.action(description="Cancel (pending only)")
    def cancel(self, request, queryset):
        self.apply(request, queryset, services.message_cancel, "cancelled")

    @admin.action(description="Cancel their whole batches (what is still pending)")
    def cancel_batches(self, request, queryset):
        picked = queryset.exclude(batch_id="").select_related("session")
        batches = sorted({(message.batch_id, message.session) for message in picked}, key=lambda batch: batch[0])
        if not batches:
            messages.error(request, "None of the selected messages came in a batch (a bulk request).")
        for batch_id, session in batches:
            cancelled, not_cancelled = services.batch_cancel(
                session=session, batch_id=batch_id, actor=f"admin:{request.user}"
            )
            messages.success(request, f"{batch_id}: {cancelled} cancelled, {not_cancelled} no longer pending.")

    @admin.action(description="Send now (pending only)")
    def send_now(self, request, queryset):
        self.apply(request, queryset, services.message_send_now, "due now")

    @admin.action(description="Retry (failed only)")
    def retry(self, request, queryset):
        self.apply(request, queryset, services.message_retry, "queued for retry")

    def apply(self, request, queryset, service, outcome):
        apply_to_each(request, queryset, service, outcome, noun="message(s)", argument="message")
