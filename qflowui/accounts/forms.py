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
