"""A session's quiet hours (the rule that holds messages is quiethours.py)."""

from datetime import time

from ..models import Session


def session_set_quiet_hours(*, session: Session, start: time | None, end: time | None, time_zone: str = "") -> None:
    """Set the window (an IANA zone or "recipient"), or clear it with start and end None. Messages already
    held keep their time; each is checked again when it falls due."""
    session.quiet_start, session.quiet_end, session.quiet_time_zone = start, end, time_zone if start else ""
    Session.objects.filter(pk=session.pk).update(
        quiet_start=session.quiet_start, quiet_end=session.quiet_end, quiet_time_zone=session.quiet_time_zone
    )
