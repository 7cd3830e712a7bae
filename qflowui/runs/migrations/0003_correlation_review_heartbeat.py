"""Runs: a public id posted as the correlation variable, needs_review and not_started, a wait
before the next POST (rate limits), and the beat heartbeat.

`public_id` is unique: added nullable, filled with one new UUID per existing run, then made
unique (the documented way to add a unique field to a table that has rows).
"""

import uuid

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def fill_new_columns(apps, schema_editor):
    Run = apps.get_model("runs", "Run")
    for pk in Run.objects.filter(public_id__isnull=True).values_list("pk", flat=True).iterator():
        Run.objects.filter(pk=pk).update(public_id=uuid.uuid4())
    # Runs not posted yet will carry the correlation variable like new ones; the others were
    # posted without it (they are never matched automatically).
    Run.objects.filter(state="queued").update(
        correlation_key=getattr(settings, "RUNS_CORRELATION_VARIABLE", "")
    )


class Migration(migrations.Migration):

    dependencies = [
        ('runs', '0002_groups'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Heartbeat',
            fields=[
                ('name', models.CharField(max_length=32, primary_key=True, serialize=False)),
                ('at', models.DateTimeField()),
            ],
        ),
        migrations.AddField(
            model_name='run',
            name='candidates',
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name='run',
            name='correlation_key',
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name='run',
            name='needs_review_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='run',
            name='not_before',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='run',
            name='not_started_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='run',
            name='public_id',
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.RunPython(fill_new_columns, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name='run',
            name='public_id',
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
        migrations.AddField(
            model_name='run',
            name='reviewed_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='run',
            name='state',
            field=models.CharField(choices=[('queued', 'Queued'), ('submitting', 'Submitting'), ('submitted', 'Submitted'), ('failed', 'Failed'), ('unknown', 'Unknown'), ('needs_review', 'Needs review'), ('not_started', 'Not started')], db_index=True, default='queued', max_length=16),
        ),
        migrations.AlterField(
            model_name='runevent',
            name='state',
            field=models.CharField(choices=[('queued', 'Queued'), ('submitting', 'Submitting'), ('submitted', 'Submitted'), ('failed', 'Failed'), ('unknown', 'Unknown'), ('needs_review', 'Needs review'), ('not_started', 'Not started')], max_length=16),
        ),
    ]
