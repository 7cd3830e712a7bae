"""Per-user preferences. For now one: the time zone every time is shown in."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from qflowui.accounts import zones


def validate_timezone(value: str) -> None:
    if not zones.is_valid(value):
        raise ValidationError(
            f"“{value}” is not a time zone (use an IANA name like Europe/Berlin)."
        )


class Preference(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference"
    )
    timezone = models.CharField(
        max_length=64, default=zones.DEFAULT_TIMEZONE, validators=[validate_timezone]
    )

    def __str__(self) -> str:
        return f"{self.user} ({self.timezone})"
