"""The operators' console. Actions go through the same services as the API; no status is editable by hand."""

from functools import partial

from django import forms
from django.contrib import admin, messages
from django.db import models, transaction
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from . import services
from .models import (
    ApiCredential,
    ApiKey,
    ChannelAttempt,
    MessageEvent,
    RecurringSeries,
    ScheduledMessage,
    Session,
    WebhookAttempt,
    WebhookDelivery,
)
from .transports import transport_names
from .validation import check_public_url, check_schedule_window, format_instant, parse_instant
from .wallclock import RECIPIENT, zone


class RescheduleForm(forms.Form):
    scheduled_at = forms.CharField(label="New time (ISO 8601; without an offset it is UTC)")

    def clean_scheduled_at(self):
        when = parse_instant(self.cleaned_data["scheduled_at"])
        check_schedule_window(when, timezone.now())
        return when


class ReadOnlyInline(admin.TabularInline):
    """A record to read: history, attempts, keys. Nothing added or removed by hand."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class SessionForm(forms.ModelForm):
    transport = forms.ChoiceField(choices=())
    # Declared, not generated: a URL typed without a scheme is https (Django 6's default, said now).
    webhook_url = forms.URLField(max_length=2000, required=False, assume_scheme="https")

    class Meta:
        model = Session
        fields = [
            "name",
            "webhook_url",
            "transport",
            "send_rate",
            "api_rate_limit",
            "max_lateness_seconds",
            "active",
            "quiet_start",
            "quiet_end",
            "quiet_time_zone",
        ]
        help_texts = {"quiet_end": "Before the start: the quiet hours span midnight. Leave all three empty for none."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["transport"].choices = [(name, name) for name in transport_names()]

    def clean_webhook_url(self):
        url = self.cleaned_data["webhook_url"]
        if url:
            check_public_url(url)
        return url

    def clean_quiet_time_zone(self):
        name = self.cleaned_data["quiet_time_zone"].strip()
        if name and name != RECIPIENT:
            try:
                zone(name)
            except ValueError as exc:
                raise forms.ValidationError(str(exc)) from None
        return name


class ApiKeyInline(ReadOnlyInline):
    model = ApiKey
    fields = readonly_fields = ["prefix", "label", "created_at", "last_used_at", "revoked_at"]
    show_change_link = True


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    form = SessionForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = [
        "name",
        "id",
        "transport",
        "send_rate",
        "api_rate_limit",
        "active",
        "paused",
        "quiet_hours",
        "webhook_url",
        "webhooks_stopped",
        "created_at",
    ]
    list_filter = ["active", "transport"]
    search_fields = ["name", "id"]
    readonly_fields = ["id", "created_at", "paused_at", "webhook_disabled_at"]
    inlines = [ApiKeyInline]
    actions = ["issue_api_key", "rotate_api_key", "rotate_webhook_secret", "enable_webhooks", "pause", "resume"]

    @admin.display(boolean=True, description="sending paused")
    def paused(self, session):
        return session.paused_at is not None

    @admin.display(description="quiet hours")
    def quiet_hours(self, session):
        if session.quiet_start is None:
            return "-"
        return f"{session.quiet_start:%H:%M}–{session.quiet_end:%H:%M} {session.quiet_time_zone}"

    @admin.action(description="Rotate the API key: new key (shown once), old keys revoked")
    def rotate_api_key(self, request, queryset):
        show_once(
            request,
            (
                (
                    f"New key for {session.name}; its older keys no longer work.",
                    {"api_key": services.api_key_rotate(session=session, label=f"rotated by admin:{request.user}")},
                )
                for session in queryset
            ),
        )

    @admin.action(description="Pause sending")
    def pause(self, request, queryset):
        for session in queryset:
            services.session_pause(session=session)
        messages.success(request, f"Sending paused for {queryset.count()} session(s); due messages wait.")

    @admin.action(description="Resume sending")
    def resume(self, request, queryset):
        for session in queryset:
            services.session_resume(session=session)
        messages.success(request, f"Sending resumed for {queryset.count()} session(s).")

    @admin.display(boolean=True, description="webhooks stopped (410)")
    def webhooks_stopped(self, session):
        return session.webhook_disabled_at is not None

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        created = services.session_create(
            name=obj.name,
            webhook_url=obj.webhook_url,
            transport=obj.transport,
            active=form.cleaned_data["active"],
            send_rate=obj.send_rate,
            api_rate_limit=obj.api_rate_limit,
            max_lateness_seconds=obj.max_lateness_seconds,
        )
        services.session_set_quiet_hours(
            session=created.session, start=obj.quiet_start, end=obj.quiet_end, time_zone=obj.quiet_time_zone
        )
        obj.pk = created.session.pk
        obj.active = created.session.active
        show_once(
            request,
            [
                (
                    f"Session {obj.pk} created.",
                    {
                        "api_key": created.api_key,
                        "webhook_secret": created.session.webhook_secret,
                        "omnimessage_api_username": created.api_username,
                        "omnimessage_api_password": created.api_password,
                    },
                )
            ],
        )

    @admin.action(description="Issue a new API key (shown once)")
    def issue_api_key(self, request, queryset):
        show_once(
            request,
            (
                (
                    f"New key for {session.name}.",
                    {"api_key": services.api_key_create(session=session, label=f"admin:{request.user}")[1]},
                )
                for session in queryset
            ),
        )

    @admin.action(description="Rotate the webhook secret (shown once)")
    def rotate_webhook_secret(self, request, queryset):
        show_once(
            request,
            (
                (
                    f"New webhook secret for {session.name}.",
                    {"webhook_secret": services.session_rotate_webhook_secret(session=session)},
                )
                for session in queryset
            ),
        )

    @admin.action(description="Resume webhooks stopped by a 410 Gone")
    def enable_webhooks(self, request, queryset):
        for session in queryset:
            services.session_enable_webhooks(session=session)
        messages.success(request, f"Webhooks resumed for {queryset.count()} session(s).")


def show_once(request, notices) -> None:
    """Show new secrets, each under its headline, once. `notices` yields (headline, {name: secret}) pairs,
    calling the services that make the secrets as it goes: making and rendering share one transaction,
    so a notice that cannot be shown undoes its change, and no key replaces the old one unseen."""
    with transaction.atomic():
        rendered = [secret_notice(headline, secrets) for headline, secrets in notices]
    for notice in rendered:
        messages.warning(request, notice)


def secret_notice(headline: str, secrets: dict) -> str:
    # Every value is an argument, never part of the format string: a name is text, whatever it holds.
    lines = format_html_join(
        "", "<br>{}: <code>{}</code>", ((name.replace("_", " "), value) for name, value in secrets.items())
    )
    return format_html("{} Copy now: shown only this once.{}", headline, lines)


class RevocableAdmin(admin.ModelAdmin):
    """API keys and credentials: made by sessions' actions, never by hand; revoked through a service."""

    list_filter = ["session"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def revoke_one(self, obj):
        raise NotImplementedError

    @admin.action(description="Revoke selected")
    def revoke(self, request, queryset):
        for obj in queryset:
            self.revoke_one(obj)
        messages.success(request, f"Revoked {queryset.count()} {self.opts.verbose_name_plural}.")


@admin.register(ApiKey)
class ApiKeyAdmin(RevocableAdmin):
    list_display = ["prefix", "session", "label", "created_at", "last_used_at", "revoked_at"]
    search_fields = ["prefix", "label", "session__name"]
    readonly_fields = ["session", "prefix", "created_at", "last_used_at", "revoked_at"]
    fields = ["session", "prefix", "label", "created_at", "last_used_at", "revoked_at"]

    def revoke_one(self, obj):
        services.api_key_revoke(api_key=obj)


@admin.register(ApiCredential)
class ApiCredentialAdmin(RevocableAdmin):
    list_display = ["username", "session", "created_at", "revoked_at"]
    search_fields = ["username", "session__name"]
    readonly_fields = fields = ["username", "session", "created_at", "revoked_at"]

    def revoke_one(self, obj):
        services.api_credential_revoke(credential=obj)


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
        done, refused = 0, []
        for message in queryset:
            try:
                service(message=message, actor=f"admin:{request.user}")
                done += 1
            except services.NotAllowed as exc:
                refused.append(f"{message.id}: {exc}")
        if done:
            messages.success(request, f"{done} message(s) {outcome}.")
        for reason in refused:
            messages.error(request, reason)


@admin.register(RecurringSeries)
class RecurringSeriesAdmin(admin.ModelAdmin):
    """Series are made through the API; operators read them and pause, resume or stop them."""

    list_display = ["id", "session", "to", "rule", "time_zone", "status", "created_count", "next_at", "created_at"]
    list_filter = ["status", "session"]
    search_fields = ["id", "to"]
    list_select_related = ["session"]
    readonly_fields = [field.name for field in RecurringSeries._meta.fields]
    actions = ["pause", "resume", "stop"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="rule")
    def rule(self, series):
        return series.rrule or f"cron {series.cron}"

    @admin.action(description="Pause (cancels the occurrences already made)")
    def pause(self, request, queryset):
        self.apply(request, queryset, services.recurring_pause, "paused")

    @admin.action(description="Resume")
    def resume(self, request, queryset):
        self.apply(request, queryset, services.recurring_resume, "resumed")

    @admin.action(description="Stop for good (cancels the occurrences already made)")
    def stop(self, request, queryset):
        self.apply(request, queryset, services.recurring_stop, "stopped")

    def apply(self, request, queryset, service, outcome):
        done, refused = 0, []
        for series in queryset:
            try:
                service(series=series, actor=f"admin:{request.user}")
                done += 1
            except services.NotAllowed as exc:
                refused.append(f"{series.id}: {exc}")
        if done:
            messages.success(request, f"{done} series {outcome}.")
        for reason in refused:
            messages.error(request, reason)


class WebhookAttemptInline(ReadOnlyInline):
    model = WebhookAttempt
    fields = readonly_fields = ["number", "started_at", "duration_ms", "status_code", "error", "response_excerpt"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "event",
        "session",
        "message",
        "status",
        "attempts",
        "last_status_code",
        "created_at",
        "due_at",
    ]
    list_filter = ["status", "event", "session"]
    search_fields = ["id", "message__id", "url"]
    list_select_related = ["session", "message"]
    readonly_fields = [field.name for field in WebhookDelivery._meta.fields]
    inlines = [WebhookAttemptInline]
    actions = ["redeliver"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Redeliver (same webhook-id, fresh retries)")
    def redeliver(self, request, queryset):
        for delivery in queryset:
            services.webhook_redeliver(delivery=delivery)
        messages.success(request, f"{queryset.count()} delivery(ies) queued again.")
