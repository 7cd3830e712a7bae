"""Exit 0 while Celery beat ticks: the health check of the beat container.

Beat records a heartbeat row when it starts and whenever it sends scheduled tasks
(qflowui.runs.heartbeat). Healthy: a heartbeat younger than 3 of beat's shortest intervals
(90 s with the 30 s runs sweep). Unhealthy (exit 1): no heartbeat yet, a stale one, or a
database that cannot be read.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils import timezone

from qflowui.runs.heartbeat import beat_status, stale_after


class Command(BaseCommand):
    help = "Exit 0 when Celery beat's heartbeat is fresh (the beat container's health check)."

    def handle(self, *args: object, **options: object) -> None:
        try:
            status = beat_status()
        except DatabaseError as exc:
            raise CommandError(f"beat heartbeat unreadable: {type(exc).__name__}") from None
        if status.last is None:
            raise CommandError("beat has not ticked yet")
        age = (timezone.now() - status.last).total_seconds()
        if status.stale:
            raise CommandError(
                f"beat's last tick is {age:.0f} s old (stale after "
                f"{stale_after().total_seconds():.0f} s)"
            )
        self.stdout.write(f"beat ticked {age:.0f} s ago")
