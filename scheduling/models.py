"""Fields, choices and constraints only. Every write and status change lives in services/."""

import secrets
import uuid
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from .rates import parse_rate, parse_request_limit


def validate_rate(value: str) -> None:
    try:
        parse_rate(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def validate_request_limit(value: str) -> None:
    try:
        parse_request_limit(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def new_message_id():
    return f"sched_{secrets.token_urlsafe(15)}"


def new_batch_id():
    return f"batch_{secrets.token_urlsafe(15)}"


def new_recurring_id():
    return f"rec_{secrets.token_urlsafe(15)}"


def new_webhook_id():
    return f"msg_{secrets.token_urlsafe(18)}"


class Session(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    webhook_url = models.URLField(max_length=2000, blank=True)
    # Kept in clear because signing needs it; never logged, shown once in the admin.
    webhook_secret = models.CharField(max_length=100, editable=False)
    transport = models.CharField(max_length=50, default="default")
    channel_transports = models.JSONField(
        default=dict,
        blank=True,
        help_text='Omnimessage channels: {"sms": "<transport>", …}; a channel left out uses CHANNEL_TRANSPORTS.',
    )
    active = models.BooleanField(default=True, help_text="Inactive sessions' keys are refused.")
    send_rate = models.CharField(
        max_length=20,
        blank=True,
        validators=[validate_rate],
        help_text='At most this many sends, fleet-wide, evenly spaced: "20/s", "30/min", "1000/h"; empty: unpaced '
        "(its transport's rate still applies).",
    )
    api_rate_limit = models.CharField(
        "API rate limit",
        max_length=20,
        blank=True,
        validators=[validate_request_limit],
        help_text='Requests per API key or omnimessage credential, fleet-wide: "100/min", "5/s"; "0": unlimited; '
        "empty: the API_RATE_LIMIT setting.",
    )
    max_lateness_seconds = models.PositiveIntegerField(
        "max lateness (seconds)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="A message not sent this long after its time expires instead (unless it has its own expiresAt); "
        "empty: the DISPATCH_MAX_LATENESS_SECONDS setting.",
    )
    paused_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="While set, nothing of this session is sent; due messages wait.",
    )
    webhook_disabled_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="Set when the endpoint answered 410 Gone; no webhooks until re-enabled.",
    )
    # Quiet hours: a message falling due from quiet_start to quiet_end (wall clock in quiet_time_zone, or the
    # recipient's zone) waits until they end. Unset: none.
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    quiet_time_zone = models.CharField(max_length=64, blank=True, help_text='An IANA zone, or "recipient".')
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(quiet_start__isnull=True, quiet_end__isnull=True, quiet_time_zone="")
                | (
                    models.Q(quiet_start__isnull=False, quiet_end__isnull=False)
                    & ~models.Q(quiet_time_zone="")
                    & ~models.Q(quiet_start=models.F("quiet_end"))
                ),
                name="quiet_hours_whole",
            )
        ]

    def __str__(self):
        return self.name


class ApiKey(models.Model):
    """A session key `wask_…`: only its prefix (to find it) and SHA-256 (to check it) are kept."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="api_keys")
    prefix = models.CharField(max_length=16, db_index=True, editable=False)
    hashed_key = models.CharField(max_length=64, editable=False)
    label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"

    def __str__(self):
        return f"{self.prefix}…"


class ApiCredential(models.Model):
    """HTTP basic-auth credentials of the Messente-compatible API; the password is kept as SHA-256 only."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="api_credentials")
    username = models.CharField(max_length=64, unique=True, editable=False)
    hashed_password = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "Messente API credential"

    def __str__(self):
        return self.username


class MessageType(models.TextChoices):
    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    DOCUMENT = "document"
    TEMPLATE = "template"  # a WhatsApp template: the one kind a business may send outside the 24-hour window


class MessageStatus(models.TextChoices):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    CANCELLED = "cancelled"
    FAILED = "failed"
    EXPIRED = "expired"  # not sent by its deadline (expiresAt, or the max lateness), and never will be


class ScheduledMessage(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_message_id, editable=False)
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="messages")
    to = models.CharField(max_length=64, help_text="E.164 digits without '+', or a WhatsApp group id (…@g.us).")
    type = models.CharField(max_length=10, choices=MessageType.choices, default=MessageType.TEXT)
    text = models.TextField(blank=True)
    media = models.URLField(max_length=2000, blank=True)
    caption = models.TextField(blank=True)
    template = models.JSONField(
        null=True, blank=True, help_text='A template message\'s {"name", "language", "components"}, as the API took it.'
    )
    scheduled_at = models.DateTimeField()
    # The deadline: not sent by then, it expires. The client's expiresAt, or scheduledAt plus the max lateness
    # of its session (or the setting) when it was scheduled; none, no deadline.
    expires_at = models.DateTimeField(null=True, blank=True)
    expiry_from_client = models.BooleanField(default=False, help_text="expires_at is the client's own expiresAt.")
    status = models.CharField(max_length=10, choices=MessageStatus.choices, default=MessageStatus.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    provider_message_id = models.CharField(max_length=200, blank=True)
    last_error = models.TextField(blank=True)
    # Bumped by every transition and edit: a queued task for an older version is a no-op.
    version = models.PositiveIntegerField(default=1)
    # Dispatch bookkeeping (docs/ARCHITECTURE.md, the path of a message).
    due_at = models.DateTimeField(help_text="When the next send attempt is due (scheduledAt, or a retry).")
    handed_over_at = models.DateTimeField(null=True, blank=True)
    task_id = models.CharField(max_length=100, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # The pacing slot reserved for it (fleet-wide, in Redis), and on which key ("session" or "transport"):
    # when it comes back then, it asks only its other key.
    paced_for = models.DateTimeField(null=True, blank=True)
    paced_on = models.CharField(max_length=10, blank=True)
    # Omnimessages (the Messente-compatible API): channels are tried in order, see ChannelAttempt.
    dlr_url = models.URLField(max_length=2000, blank=True, help_text="Where channel delivery reports go.")
    current_channel = models.PositiveSmallIntegerField(default=0)
    # How many ChannelAttempt rows it has: 0 for a session-API message, so its dispatch skips that lookup.
    channel_count = models.PositiveSmallIntegerField(default=0, editable=False)
    priority = models.CharField(max_length=10, blank=True)
    text_store = models.CharField(max_length=10, blank=True)
    # The bulk request it came in (POST /sessions/{id}/scheduled/bulk), which lists and cancels it with the rest.
    batch_id = models.CharField(max_length=40, blank=True, editable=False)
    # Recipient-local time and quiet hours (docs/ARCHITECTURE.md, time).
    time_zone = models.CharField(max_length=64, blank=True, help_text="The zone its localTime was given in.")
    ignore_quiet_hours = models.BooleanField(default=False)
    # An occurrence of a recurring series: the rule's instant, which never changes (scheduled_at may).
    recurring = models.ForeignKey(
        "RecurringSeries", null=True, blank=True, on_delete=models.RESTRICT, related_name="occurrences"
    )
    occurrence_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # Exactly once per occurrence, whichever pumps materialise the series.
            models.UniqueConstraint(fields=["recurring", "occurrence_at"], name="one_message_per_occurrence")
        ]
        indexes = [
            models.Index(fields=["session", "scheduled_at", "id"], name="msg_session_schedule"),
            models.Index(fields=["session", "batch_id"], name="msg_batch", condition=~models.Q(batch_id="")),
            # The pump's scans touch only live rows: a small index however long history grows.
            models.Index(fields=["due_at"], name="msg_pending_due", condition=models.Q(status="pending")),
            models.Index(fields=["lease_until"], name="msg_sending_lease", condition=models.Q(status="sending")),
            models.Index(
                fields=["expires_at"],
                name="msg_pending_expiry",
                condition=models.Q(status="pending", expires_at__isnull=False),
            ),
            models.Index(
                fields=["paced_for"],
                name="msg_pending_paced",
                condition=models.Q(status="pending", paced_for__isnull=False),
            ),
        ]

    def __str__(self):
        return self.id


class RecurringStatus(models.TextChoices):
    ACTIVE = "active"
    PAUSED = "paused"
    STOPPED = "stopped"
    FINISHED = "finished", "finished (count or until reached)"


class RecurringSeries(models.Model):
    """A message content and a rule; the pump makes each occurrence an ordinary message shortly before it
    enters the dispatch horizon (services/occurrences.py)."""

    id = models.CharField(primary_key=True, max_length=40, default=new_recurring_id, editable=False)
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="recurring_series")
    to = models.CharField(max_length=64)
    type = models.CharField(max_length=10, choices=MessageType.choices, default=MessageType.TEXT)
    text = models.TextField(blank=True)
    media = models.URLField(max_length=2000, blank=True)
    caption = models.TextField(blank=True)
    template = models.JSONField(null=True, blank=True, help_text="For type template: as ScheduledMessage.template.")
    ignore_quiet_hours = models.BooleanField(default=False)
    rrule = models.CharField(max_length=500, blank=True, help_text="As the client gave it.")
    cron = models.CharField(max_length=200, blank=True)
    expanded_rule = models.CharField(max_length=600, editable=False, help_text="The rule with its defaults.")
    time_zone = models.CharField(max_length=64)
    start_wall = models.CharField(max_length=19, editable=False, help_text="DTSTART: a wall time in time_zone.")
    # Where an RRULE's INTERVAL is counted from: the start, then an occurrence near the pump's position,
    # so that finding the next occurrence never walks the series' whole past.
    anchor_wall = models.CharField(max_length=19, editable=False)
    until = models.DateTimeField(null=True, blank=True)
    count = models.PositiveIntegerField(null=True, blank=True)
    created_count = models.PositiveIntegerField(default=0, help_text="Occurrences made so far.")
    next_at = models.DateTimeField(null=True, blank=True, help_text="The next occurrence not made yet.")
    status = models.CharField(max_length=10, choices=RecurringStatus.choices, default=RecurringStatus.ACTIVE)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "recurring series"
        indexes = [
            models.Index(fields=["session", "created_at", "id"], name="recurring_session_created"),
            models.Index(fields=["next_at"], name="recurring_active_next", condition=models.Q(status="active")),
        ]

    def __str__(self):
        return self.id


class MessageEvent(models.Model):
    """Append-only history: one row per transition, with who did it and why."""

    message = models.ForeignKey(ScheduledMessage, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(auto_now_add=True)
    from_status = models.CharField(max_length=10, choices=MessageStatus.choices, blank=True)
    to_status = models.CharField(max_length=10, choices=MessageStatus.choices)
    attempt = models.PositiveIntegerField(default=0)
    actor = models.CharField(
        max_length=200, blank=True, help_text="Who made the change: api, admin:USER, worker:HOST or pump."
    )
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.from_status or '∅'} → {self.to_status}"


class ChannelStatus(models.TextChoices):
    """Messente's status words, as its delivery reports and status endpoint use them."""

    ACK = "ACK", "ACK (accepted by the provider)"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED", "EXPIRED (no success within ttl/validity)"
    DELETED = "DELETED", "DELETED (cancelled)"


class ChannelAttempt(models.Model):
    """One channel of an omnimessage, in the order the client listed them."""

    message = models.ForeignKey(ScheduledMessage, on_delete=models.CASCADE, related_name="channels")
    position = models.PositiveSmallIntegerField()
    channel = models.CharField(max_length=10)
    channel_message_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    sender = models.CharField(max_length=64)
    content = models.JSONField(help_text="What this channel sends: type, text, media, caption.")
    ttl_seconds = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=ChannelStatus.choices, blank=True)
    error = models.TextField(blank=True)
    err = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Messente's machine error code.")
    status_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["message", "position"], name="one_attempt_per_position")]

    def __str__(self):
        return f"{self.position + 1}. {self.channel}"

    @property
    def deadline(self):
        if self.started_at is None or self.ttl_seconds is None:
            return None
        return self.started_at + timedelta(seconds=self.ttl_seconds)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    EXHAUSTED = "exhausted", "exhausted (all retries failed)"
    GONE = "gone", "gone (endpoint answered 410)"


class WebhookDelivery(models.Model):
    """The outbox: one event for one endpoint, written in the transaction of the change it reports."""

    id = models.CharField(
        primary_key=True,
        max_length=40,
        default=new_webhook_id,
        editable=False,
        help_text="The `webhook-id` header: the same on every attempt.",
    )
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="webhook_deliveries")
    message = models.ForeignKey(
        ScheduledMessage, null=True, blank=True, on_delete=models.CASCADE, related_name="webhooks"
    )
    event = models.CharField(max_length=40)
    url = models.URLField(max_length=2000)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    version = models.PositiveIntegerField(default=1)
    due_at = models.DateTimeField(help_text="When the next attempt is due.")
    handed_over_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["due_at"], name="webhook_pending_due", condition=models.Q(status="pending")),
        ]

    def __str__(self):
        return f"{self.event} {self.id}"


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["number"]


class IdempotencyKey(models.Model):
    """A client's `Idempotency-Key` on a creating POST (the IETF draft, Stripe's practice): the request it
    was first used with (a fingerprint), and once that request succeeded, its answer to replay. The unique
    constraint is what makes two requests with one key, on any web processes, run the creation once."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="idempotency_keys")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the method, path and JSON body.")
    # Set while the first request runs: another request with the key then gets 409.
    locked_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, help_text="The answer as it was sent, byte for byte.")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "key"], name="one_idempotency_key_per_session")]
        indexes = [models.Index(fields=["expires_at"], name="idempotency_key_expiry")]

    def __str__(self):
        return self.key


class PumpHeartbeat(models.Model):
    """Each dispatch pump's last pass, for /readyz and the pump-lag metric."""

    name = models.CharField(primary_key=True, max_length=200, help_text="host:pid")
    beat_at = models.DateTimeField()

    def __str__(self):
        return self.name
