from django.contrib.admin.apps import AdminConfig


class OpsAdminConfig(AdminConfig):
    """django.contrib.admin, with OpsAdminSite (the operations dashboard) as the default site."""

    default_site = "scheduling.admin_site.OpsAdminSite"
