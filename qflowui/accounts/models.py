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


class OidcIdentity(models.Model):
    """The single sign-on identity of a user: the provider's `sub` at one issuer.

    A user is found by this, never by user name or e-mail: signing in with the provider can
    never take over a local account that happens to have the same name.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oidc_identity"
    )
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="oidc_identity_unique_sub")
        ]
        verbose_name = "single sign-on identity"

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"
