"""Every write, and every status transition, of scheduled messages and their sessions: one module per
concern (docs/ARCHITECTURE.md). Callers use the names below (`services.message_schedule(...)`); the
modules' other names are theirs, shared with one another only.
"""

from .batches import batch_cancel, messages_schedule_batch
from .deliveries import webhook_deliver, webhook_redeliver, webhook_retry_delay, webhooks_deliver
from .dispatch import message_dispatch, retry_delay
from .idempotency import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    IdempotentReplay,
    idempotency_key_claim,
    idempotency_key_complete,
    idempotency_key_release,
)
from .messages import (
    NotAllowed,
    message_cancel,
    message_check_changeable,
    message_retry,
    message_schedule,
    message_send_now,
    message_update,
)
from .occurrences import occurrences_materialise
from .omnimessages import ChannelSpec, delivery_report, omnimessage_cancel, omnimessage_schedule
from .outbox import webhook_payload
from .pump import PumpPass, dispatch_pump_once, pump_heartbeat
from .quiet_hours import session_set_quiet_hours
from .recurring import recurring_create, recurring_pause, recurring_resume, recurring_stop, recurring_update
from .sessions import (
    NewSession,
    api_credential_authenticate,
    api_credential_create,
    api_credential_revoke,
    api_key_authenticate,
    api_key_create,
    api_key_revoke,
    api_key_rotate,
    session_create,
    session_enable_webhooks,
    session_pause,
    session_resume,
    session_rotate_webhook_secret,
)
from .ticks import message_dispatch_batch, messages_send_due

__all__ = [
    "ChannelSpec",
    "IdempotencyKeyInUse",
    "IdempotencyKeyReused",
    "IdempotentReplay",
    "NewSession",
    "NotAllowed",
    "PumpPass",
    "api_credential_authenticate",
    "api_credential_create",
    "api_credential_revoke",
    "api_key_authenticate",
    "api_key_create",
    "api_key_revoke",
    "api_key_rotate",
    "batch_cancel",
    "delivery_report",
    "dispatch_pump_once",
    "idempotency_key_claim",
    "idempotency_key_complete",
    "idempotency_key_release",
    "message_cancel",
    "message_check_changeable",
    "message_dispatch",
    "message_dispatch_batch",
    "message_retry",
    "message_schedule",
    "message_send_now",
    "messages_schedule_batch",
    "messages_send_due",
    "message_update",
    "omnimessage_cancel",
    "occurrences_materialise",
    "omnimessage_schedule",
    "pump_heartbeat",
    "recurring_create",
    "recurring_pause",
    "recurring_resume",
    "recurring_stop",
    "recurring_update",
    "retry_delay",
    "session_create",
    "session_enable_webhooks",
    "session_pause",
    "session_resume",
    "session_rotate_webhook_secret",
    "session_set_quiet_hours",
    "webhook_deliver",
    "webhook_payload",
    "webhook_redeliver",
    "webhook_retry_delay",
    "webhooks_deliver",
]
