"""Mask, with the current rules, what earlier versions stored before those rules existed.

Mirror rows, cached step payloads, sync records, runs past their POST, run events and audit
rows. Only rows whose masked form differs are written; big tables are read in batches.
Runs still queued or submitting keep their body as typed: it has not been sent yet.
"""

from __future__ import annotations

import json

from django.db import migrations

from qflowui.core.masking import mask, mask_free_text

BATCH = 200

# model -> (JSON columns, text columns)
MIRROR = {
    "Workflow": (("definition", "raw", "tags"), ("name", "description", "category")),
    "Execution": (("categories", "variables", "tags", "raw"), ()),
    "Step": (("raw",), ("error",)),
    "StepPayload": (("body",), ()),
    "SyncRun": ((), ("error", "note")),
}
RUNS = {
    "Run": (("input", "variables", "response"), ("error",)),
    "RunEvent": ((), ("note",)),
    "AuditEvent": (("detail",), ("target",)),
}
UNSENT_RUN_STATES = ("queued", "submitting")


def _masked_changes(row, json_fields, text_fields) -> dict:
    changes = {}
    for name in json_fields:
        value = getattr(row, name)
        if value is None:
            continue
        masked = mask(value)
        if json.dumps(masked, sort_keys=True) != json.dumps(value, sort_keys=True):
            changes[name] = masked
    for name in text_fields:
        value = getattr(row, name)
        if isinstance(value, str) and value:
            masked = mask_free_text(value)
            if masked != value:
                changes[name] = masked
    return changes


def _mask_table(model, json_fields, text_fields, queryset=None) -> None:
    rows = (queryset if queryset is not None else model.objects.all()).order_by("pk")
    last = None
    while True:
        page = rows if last is None else rows.filter(pk__gt=last)
        batch = list(page[:BATCH])
        if not batch:
            return
        for row in batch:
            changes = _masked_changes(row, json_fields, text_fields)
            if changes:
                model.objects.filter(pk=row.pk).update(**changes)
        last = batch[-1].pk


def mask_stored(apps, schema_editor) -> None:
    for name, (json_fields, text_fields) in MIRROR.items():
        _mask_table(apps.get_model("mirror", name), json_fields, text_fields)
    for name, (json_fields, text_fields) in RUNS.items():
        model = apps.get_model("runs", name)
        queryset = None
        if name == "Run":
            queryset = model.objects.exclude(state__in=UNSENT_RUN_STATES)
            # Unsent runs: only QFlow's words (none yet, normally) are masked.
            _mask_table(
                model, ("response",), ("error",), model.objects.filter(state__in=UNSENT_RUN_STATES)
            )
        _mask_table(model, json_fields, text_fields, queryset)


class Migration(migrations.Migration):
    dependencies = [
        ("mirror", "0003_synced_indexes"),
        ("runs", "0002_groups"),
    ]

    operations = [migrations.RunPython(mask_stored, migrations.RunPython.noop, elidable=True)]
