from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from scheduling import ops
from scheduling.api import handlers

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("metrics", ops.metrics_view, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("", RedirectView.as_view(pattern_name="docs"), name="home"),
    path("", include("scheduling.api.urls")),
]

handler400 = handlers.bad_request
handler404 = handlers.not_found
handler500 = handlers.server_error
