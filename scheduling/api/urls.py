from django.urls import path

from .omni import views as omni
from .session import batches, quiet_hours, recurring_views, views

urlpatterns = [
    path("sessions/<str:session_id>/scheduled", views.ScheduledListView.as_view(), name="scheduled-list"),
    path("sessions/<str:session_id>/scheduled/bulk", batches.ScheduledBulkView.as_view(), name="scheduled-bulk"),
    path("sessions/<str:session_id>/batches/<str:batch_id>", batches.BatchView.as_view(), name="batch"),
    path(
        "sessions/<str:session_id>/scheduled/<str:scheduled_id>",
        views.ScheduledDetailView.as_view(),
        name="scheduled-detail",
    ),
    path("sessions/<str:session_id>/recurring", recurring_views.RecurringListView.as_view(), name="recurring-list"),
    path(
        "sessions/<str:session_id>/recurring/<str:recurring_id>",
        recurring_views.RecurringDetailView.as_view(),
        name="recurring-detail",
    ),
    path(
        "sessions/<str:session_id>/recurring/<str:recurring_id>/pause",
        recurring_views.RecurringPauseView.as_view(),
        name="recurring-pause",
    ),
    path(
        "sessions/<str:session_id>/recurring/<str:recurring_id>/resume",
        recurring_views.RecurringResumeView.as_view(),
        name="recurring-resume",
    ),
    path("sessions/<str:session_id>/quiet-hours", quiet_hours.QuietHoursView.as_view(), name="quiet-hours"),
    # Messente's Omnichannel API (its clients' host ends in /v1).
    path("v1/omnimessage", omni.OmnimessageCreateView.as_view(), name="omnimessage"),
    path("v1/omnimessages", omni.OmnimessageBulkCreateView.as_view(), name="omnimessage-bulk"),
    path("v1/omnimessage/<str:omnimessage_id>", omni.OmnimessageCancelView.as_view(), name="omnimessage-cancel"),
    path("v1/omnimessage/<str:omnimessage_id>/status", omni.OmnimessageStatusView.as_view(), name="omnimessage-status"),
]
