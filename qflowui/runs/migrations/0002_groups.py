"""The two roles: Viewers (see everything, run nothing) and Runners (may also run workflows).

Permissions are normally created after all migrations (post_migrate), so the ones the groups
need are created here if missing; post_migrate then finds them and leaves them alone.
"""

from __future__ import annotations

from django.db import migrations

VIEWERS = "Viewers"
RUNNERS = "Runners"
VIEW_RUN = ("view_run", "Can view run")
RUN_WORKFLOW = ("run_workflow", "Can run a workflow")


def create_groups(apps, schema_editor) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    db = schema_editor.connection.alias
    run_type, _ = ContentType.objects.using(db).get_or_create(app_label="runs", model="run")

    def permission(codename: str, name: str):
        found, _ = Permission.objects.using(db).get_or_create(
            content_type=run_type, codename=codename, defaults={"name": name}
        )
        return found

    view_run = permission(*VIEW_RUN)
    run_workflow = permission(*RUN_WORKFLOW)
    viewers, _ = Group.objects.using(db).get_or_create(name=VIEWERS)
    viewers.permissions.add(view_run)
    runners, _ = Group.objects.using(db).get_or_create(name=RUNNERS)
    runners.permissions.add(view_run, run_workflow)


def remove_groups(apps, schema_editor) -> None:
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(
        name__in=[VIEWERS, RUNNERS]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
