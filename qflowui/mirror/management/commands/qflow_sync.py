"""`python manage.py qflow_sync`: one sync pass by hand, printing what it did."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from qflowui.mirror.sync import mirror_sync


class Command(BaseCommand):
    help = "Run one sync pass of the local mirror against QFlow and print what it did."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--workflow", action="append", dest="workflows", help="only this workflow id"
        )

    def handle(self, *args: object, **options: object) -> None:
        run = mirror_sync(workflow_ids=options.get("workflows") or None)
        elapsed = (run.finished_at - run.started_at).total_seconds() if run.finished_at else 0
        self.stdout.write(
            f"sync pass {run.pk}: {run.workflows_seen} workflows, "
            f"{run.executions_new} new and {run.executions_updated} updated executions, "
            f"{run.api_calls} API calls, {elapsed:.1f} s"
        )
        if run.note:
            self.stdout.write(f"note: {run.note}")
        if run.error:
            raise CommandError(run.error)
