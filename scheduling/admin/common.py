"""What the admin pages share: read-only inlines, and actions that go through a service row by row."""

from django.contrib import admin, messages

from .. import services


class ReadOnlyInline(admin.TabularInline):
    """A record to read: history, attempts, keys. Nothing added or removed by hand."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


def apply_to_each(request, rows, service, outcome: str, *, noun: str, argument: str) -> None:
    """An action over the selected rows through a service (`service(<argument>=row, actor=...)`): says how many
    it did, and why each of the others was refused."""
    done, refused = 0, []
    for row in rows:
        try:
            service(**{argument: row}, actor=f"admin:{request.user}")
            done += 1
        except services.NotAllowed as exc:
            refused.append(f"{row.pk}: {exc}")
    if done:
        messages.success(request, f"{done} {noun} {outcome}.")
    for reason in refused:
        messages.error(request, reason)
