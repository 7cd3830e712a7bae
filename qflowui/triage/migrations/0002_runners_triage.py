"""Runners may triage executions (permission `triage.change_triage`); Viewers only read.

The permission is normally created after all migrations (post_migrate), so it is created
here if missing, as qflowui/runs/migrations/0002_groups.py does for the run permissions.
"""

from __future__ import annotations

from django.db import migrations

RUNNERS = "Runners"
CHANGE_TRIAGE = ("change_triage", "Can change triage")


def grant(apps, schema_editor) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    db = schema_editor.connection.alias
    triage_type, _ = ContentType.objects.using(db).get_or_create(
        app_label="triage", model="triage"
    )
    permission, _ = Permission.objects.using(db).get_or_create(
        content_type=triage_type,
        codename=CHANGE_TRIAGE[0],
        defaults={"name": CHANGE_TRIAGE[1]},
    )
    runners, _ = Group.objects.using(db).get_or_create(name=RUNNERS)
    runners.permissions.add(permission)


def revoke(apps, schema_editor) -> None:
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    db = schema_editor.connection.alias
    runners = Group.objects.using(db).filter(name=RUNNERS).first()
    if runners is not None:
        runners.permissions.remove(
            *Permission.objects.using(db).filter(
                content_type__app_label="triage", codename=CHANGE_TRIAGE[0]
            )
        )


class Migration(migrations.Migration):
    dependencies = [
        ("triage", "0001_initial"),
        ("runs", "0002_groups"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
