"""Webhook deliveries and their attempts; redeliver."""

from django.contrib import admin, messages

from .. import services
from ..models import (
    WebhookAttempt,
    WebhookDelivery,
)
from .common import ReadOnlyInline


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
