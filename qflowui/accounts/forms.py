from __future__ import annotations

from django import forms

from qflowui.accounts import zones
from qflowui.accounts.models import validate_timezone


class TimezoneForm(forms.Form):
    timezone = forms.CharField(max_length=64, validators=[validate_timezone])
    next = forms.CharField(required=False, max_length=2000)

    @staticmethod
    def all_choices() -> list[str]:
        return sorted(zones.available())


# --- the audit log's filters ----------------------------------------------------------------

AUDIT_KINDS = [
    ("", "Everything"),
    ("signin", "Sign-ins"),
    ("failed", "Failed sign-ins"),
    ("lockout", "Lockouts and unlocks"),
    ("signout", "Sign-outs"),
    ("run", "Runs"),
    ("denied", "Denials"),
]


class AuditFilterForm(forms.Form):
    """/audit/'s query string. Bad values are reported on the page, never a 500."""

    kind = forms.ChoiceField(required=False, choices=AUDIT_KINDS)
    action = forms.RegexField(
        required=False,
        max_length=64,
        regex=r"^[a-z_]+\.[a-z_]+$",
        error_messages={"invalid": "not an action name (like auth.login)."},
    )
    user = forms.CharField(required=False, max_length=150, strip=True)
    start = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    end = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    page = forms.IntegerField(required=False, min_value=1)

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            raise forms.ValidationError("“From” is after “To”: no event can match.")
        return data
