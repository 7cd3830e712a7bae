"""The saved view's and the subscription's forms: every bad value gets a clear message."""

from __future__ import annotations

from typing import Any

from django import forms

from qflowui.teamviews import destinations
from qflowui.teamviews.matching import parse_query
from qflowui.teamviews.models import NAME_LENGTH, SavedView, Subscription


class SavedViewForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_LENGTH,
        error_messages={
            "required": "Give the view a name.",
            "max_length": f"The name is too long (at most {NAME_LENGTH} characters).",
        },
    )
    shared = forms.BooleanField(required=False, label="Share with the team")
    query = forms.CharField(required=False, label="Filters (the list's query string)")

    def __init__(self, *args: Any, owner: Any, instance: SavedView | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.owner = owner
        self.instance = instance

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError("Give the view a name.")
        taken = SavedView.objects.filter(owner=self.owner, name__iexact=name)
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(f"You already have a view named “{name}”.")
        return name

    def clean_query(self) -> str:
        parsed = parse_query(self.cleaned_data.get("query") or "")
        if parsed.errors:
            raise forms.ValidationError(
                ["The list refuses these filters:", *parsed.errors], code="invalid"
            )
        return parsed.query


class SubscriptionForm(forms.Form):
    destination = forms.CharField(
        required=False,
        max_length=destinations.MAX_URL_LENGTH,
        label="Destination (Apprise URL)",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="slack://…, msteams://…, mailtos://…, json://host/path, jsons://…",
    )
    mode = forms.ChoiceField(choices=Subscription.MODES, initial=Subscription.EACH)
    active = forms.BooleanField(required=False, initial=True, label="Active")

    def __init__(self, *args: Any, editing: bool = False, **kw: Any):
        super().__init__(*args, **kw)
        self.editing = editing
        if editing:
            self.fields["destination"].help_text = "Leave empty to keep the current destination."

    def clean_destination(self) -> destinations.Checked | None:
        url = (self.cleaned_data.get("destination") or "").strip()
        if not url and self.editing:
            return None
        try:
            return destinations.check(url)
        except destinations.DestinationError as exc:
            raise forms.ValidationError(str(exc)) from None
