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
        if getattr(run, "skipped", False):
            self.stdout.write(f"sync pass {run.summary}")
            return
        elapsed = (run.finished_at - run.started_at).total_seconds() if run.finished_at else 0
        self.stdout.write(f"sync pass {run.pk}: {run.summary}")
        self.stdout.write(
            f"{run.workflows_seen} workflows listed, {run.workflows_synced} of "
            f"{run.workflows_total} brought up to date; "
            f"{run.executions_new} new and {run.executions_updated} updated executions, "
            f"{run.executions_gone} gone from QFlow, {run.records_skipped} malformed records "
            f"skipped; {run.api_calls} API calls, {elapsed:.1f} s"
        )
        if run.rate_limited_until:
            self.stdout.write(
                f"QFlow asked us to wait until {run.rate_limited_until:%Y-%m-%d %H:%M:%S} UTC: "
                "no pass calls it before then"
            )
        if run.note:
            self.stdout.write(f"note: {run.note}")
        if run.status == run.FAILED:
            raise CommandError(run.error or run.summary)
