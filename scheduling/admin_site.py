from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from . import selectors


class OpsAdminSite(admin.AdminSite):
    """The Django admin with an operations dashboard in front (staff only, like every admin page)."""

    site_header = "Scheduled messages"
    site_title = "Scheduled messages"
    index_template = "admin/scheduling/index.html"

    def get_urls(self):
        return [path("dashboard/", self.admin_view(self.dashboard), name="dashboard"), *super().get_urls()]

    def dashboard(self, request):
        now = timezone.now()
        rows = selectors.dashboard_rows(now)
        context = {
            **self.each_context(request),
            "title": "Dashboard",
            "now": now,
            "rows": rows,
            "totals": selectors.dashboard_totals(rows),
            "pump_age": selectors.pump_heartbeat_age(),
        }
        return TemplateResponse(request, "admin/scheduling/dashboard.html", context)
