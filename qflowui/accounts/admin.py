"""Users in the admin, with "Unlock sign-in" where staff manage them.

django-axes also lists its lock records (Axes → Access attempts); deleting one there unlocks
too. The action here clears every lock on the selected users' names, from every address.
"""

from __future__ import annotations

from axes.utils import reset
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from qflowui.accounts import audit

User = get_user_model()


class QflowUserAdmin(UserAdmin):
    actions = ["unlock_sign_in"]

    @admin.action(description="Unlock sign-in (clear failed sign-ins and lockouts)")
    def unlock_sign_in(self, request: HttpRequest, queryset: QuerySet) -> None:
        names = []
        for user in queryset.order_by("username"):
            name = user.get_username()
            cleared = reset(username=name)
            audit.audit_record(
                action=audit.UNLOCKED,
                request=request,
                target=f"user {name}",
                detail={"cleared_records": cleared},
            )
            names.append(name)
        self.message_user(
            request,
            f"Sign-in unlocked for {', '.join(names)}: they can sign in again now.",
            messages.SUCCESS,
        )


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, QflowUserAdmin)
