"""Step payloads kept as their JSON text (orjson), with the head of each large one.

The column changes type in place (PostgreSQL: jsonb to text, by `body::text`); each row is
then written again as orjson writes it (compact, the form the search's quick check reads)
and, above jsontree.LARGE_LIMIT, given its head. One row at a time: payloads weigh up to
tens of megabytes decoded.

PostgreSQL 14+ built with lz4 compresses the column with lz4 instead of pglz: a 10 MB
payload is written in ~60% of the time and read a little faster (elsewhere: unchanged).
"""

from __future__ import annotations

from django.db import migrations

import qflowui.mirror.fields


def rewrite_payloads(apps, schema_editor) -> None:
    from qflowui.executions import jsontree

    StepPayload = apps.get_model("mirror", "StepPayload")
    pks = list(StepPayload.objects.order_by("pk").values_list("pk", flat=True))
    for pk in pks:
        row = StepPayload.objects.filter(pk=pk).only("pk", "body", "size").first()
        if row is None:
            continue
        values = {"body": row.body}
        if row.size > jsontree.LARGE_LIMIT:
            values["head"] = jsontree.head_dumps(jsontree.head_of(row.body))
        StepPayload.objects.filter(pk=pk).update(**values)


LZ4 = """
DO $$ BEGIN
    ALTER TABLE mirror_steppayload ALTER COLUMN body SET COMPRESSION lz4;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'step payloads stay compressed with pglz: %', SQLERRM;
END $$;
"""


def compress_with_lz4(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(LZ4, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("mirror", "0010_started_index_covers_rollup_dims"),
    ]

    operations = [
        migrations.AlterField(
            model_name="steppayload",
            name="body",
            field=qflowui.mirror.fields.JsonTextField(null=True),
        ),
        migrations.AddField(
            model_name="steppayload",
            name="head",
            field=qflowui.mirror.fields.JsonTextField(blank=True, null=True),
        ),
        migrations.RunPython(compress_with_lz4, migrations.RunPython.noop),
        migrations.RunPython(rewrite_payloads, migrations.RunPython.noop, elidable=True),
    ]
