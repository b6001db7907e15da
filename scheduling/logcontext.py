import logging

from celery import current_task


class TaskIdFilter(logging.Filter):
    """Adds the running Celery task's id to every record, so dispatch and webhook lines carry it."""

    def filter(self, record):
        task = current_task
        record.task_id = task.request.id if task and task.request and task.request.id else None
        return True


class RevokeWithoutBackendFilter(logging.Filter):
    """Drops Celery's warning that a revoked task could not be marked in the result backend: this
    service runs without one on purpose (state lives in the database), so every cancel logged it."""

    def filter(self, record):
        message = record.msg if isinstance(record.msg, str) else ""
        args = record.args if isinstance(record.args, tuple) else ()
        return not (
            message.startswith("Failed to mark task %s as revoked in backend")
            and any("No result backend" in str(arg) for arg in args)
        )
