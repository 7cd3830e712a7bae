"""Fill the failure columns of executions whose steps are already stored."""

from django.db import migrations

from qflowui.mirror import failures
from qflowui.mirror import status as st

BATCH = 500


def backfill(apps, schema_editor):
    Execution = apps.get_model("mirror", "Execution")
    Step = apps.get_model("mirror", "Step")
    names_by_workflow: dict = {}
    queryset = (
        Execution.objects.filter(status_class__in=[*failures.FAILURE_CLASSES, st.CANCELLED])
        .select_related("workflow")
        .order_by("pk")
    )
    last = None
    while True:
        page = queryset if last is None else queryset.filter(pk__gt=last)
        batch = list(page[:BATCH])
        if not batch:
            return
        for execution in batch:
            wf = execution.workflow
            if wf.pk not in names_by_workflow:
                names_by_workflow[wf.pk] = failures.step_names(wf.definition)
            steps = list(Step.objects.filter(execution_id=execution.pk))
            fields = failures.failure_fields(wf.pk, None, steps, names_by_workflow[wf.pk])
            if fields["failure_key"]:
                Execution.objects.filter(pk=execution.pk).update(**fields)
        last = batch[-1].pk


class Migration(migrations.Migration):
    dependencies = [("mirror", "0006_execution_failure")]
    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
