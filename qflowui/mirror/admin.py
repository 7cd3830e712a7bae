from __future__ import annotations

from django.contrib import admin

from qflowui.mirror.models import QflowUser


@admin.register(QflowUser)
class QflowUserAdmin(admin.ModelAdmin):
    """Staff name the QFlow user ids seen in "Triggered by"."""

    list_display = ("display_name", "user_id", "source", "updated_at")
    search_fields = ("display_name", "user_id")
    list_filter = ("source",)
    fields = ("user_id", "display_name", "source")

    def save_model(self, request, obj, form, change):
        obj.source = QflowUser.STAFF  # a name staff saved is theirs
        super().save_model(request, obj, form, change)
