"""Sessions, their API keys and Messente credentials: secrets shown once, revoked through services."""

from django import forms
from django.contrib import admin, messages
from django.db import models, transaction
from django.utils.html import format_html, format_html_join

from .. import services
from ..models import (
    ApiKey,
    Session,
)
from ..transports import transport_names
from ..validation import check_public_url
from ..wallclock import RECIPIENT, zone
from .common import ReadOnlyInline


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
