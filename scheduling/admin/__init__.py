"""The operators' console. Actions go through the same services as the API; no status is editable by hand.
A module per page: importing them registers them."""

from . import keys, recurring, scheduled, sessions, webhooks

__all__ = ["keys", "recurring", "scheduled", "sessions", "webhooks"]
