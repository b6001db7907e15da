import logging

from celery import current_task


class TaskIdFilter(logging.Filter):
    """Adds the running Celery task's id to every record, so dispatch and webhook lines carry it."""

    def filter(self, record):
        task = current_task
        record.task_id = task.request.id if task and task.request and task.request.id else None
        return True
