"""Rebuild the executions' hourly and daily rollups from the mirror (PostgreSQL)."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import connection

from qflowui.mirror import rollups


class Command(BaseCommand):
    help = "Rebuild the list's rollups (executions per hour/day and filter) from the mirror."

    def handle(self, *args: object, **options: object) -> None:
        if not rollups.supported():
            self.stdout.write("Rollups are kept on PostgreSQL only; nothing to do.")
            return
        rollups.install()  # idempotent: the triggers are there after this
        rollups.rebuild()
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {rollups.HOURS}")  # noqa: S608 (our table)
            hours = cursor.fetchone()[0]
        self.stdout.write(f"Rollups rebuilt: {hours} hourly rows.")
