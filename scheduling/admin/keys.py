"""API keys and Messente credentials: made by sessions' actions, revoked through services."""

from django.contrib import admin, messages

from .. import services
from ..models import ApiCredential, ApiKey


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
