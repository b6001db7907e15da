"""Recurring series: made through the API; operators pause, resume or stop them."""

from django.contrib import admin

from .. import services
from ..models import (
    RecurringSeries,
)
from .common import apply_to_each


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
        apply_to_each(request, queryset, service, outcome, noun="series", argument="series")
