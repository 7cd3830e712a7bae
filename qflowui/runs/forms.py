"""The run form. The server is the authority on every value; the page's JavaScript only helps."""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from qflowui.mirror.models import Workflow
from qflowui.runs import overrides as ov

_HELP = {
    "region": "AWS region to run in.",
    "resourceGroup": "Azure resource group, e.g. DefaultResourceGroup-CIN.",
    "project": "GCP project id, e.g. gcp-qualys-demo.",
    "oci_region": "OCI region id, e.g. ap-hyderabad-1.",
    "compartment": "OCI compartment OCID, e.g. ocid1.compartment.oc1..aaaa…",
    "credentials": "AWS connector, @<uuid>.",
    "credentials_azure": "Azure connector, @<uuid>.",
    "credentials_gcp": "GCP connector, @<uuid>.",
}
_ROW = re.compile(r"^var_(key|type|value)_(\d{1,2})$")
DEFAULT_CUSTOM_ROWS = 3


class RunForm(forms.Form):
    workflow = forms.ChoiceField(
        error_messages={
            "required": "Choose the workflow to run.",
            "invalid_choice": "“%(value)s” is not a workflow known to qflowui. "
            "Choose one from the list (run a sync if it is new).",
        }
    )
    input = forms.CharField(
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false", "class": "json-input"}),
        help_text="A JSON object given to the workflow's trigger, e.g. "
        '{"buckets": ["test-bucket-1"]}. Leave {} for none.',
    )
    connectorId = forms.CharField(
        required=False,
        max_length=80,
        widget=forms.TextInput(attrs={"list": "connector-ids", "autocomplete": "off"}),
        help_text="The connector QFlow authenticates with (a UUID), for any cloud.",
    )
    region = forms.ChoiceField(
        required=False,
        choices=[("", "— the workflow's own —"), *ov.AWS_REGIONS],
        error_messages={"invalid_choice": "“%(value)s” is not an AWS region."},
    )
    resourceGroup = forms.CharField(required=False, max_length=90)
    project = forms.CharField(required=False, max_length=30)
    oci_region = forms.CharField(
        required=False, max_length=40, widget=forms.TextInput(attrs={"list": "oci-regions"})
    )
    compartment = forms.CharField(required=False, max_length=255)
    credentials = forms.CharField(required=False, max_length=80)
    credentials_azure = forms.CharField(required=False, max_length=80)
    credentials_gcp = forms.CharField(required=False, max_length=80)
    idempotency_key = forms.UUIDField(
        widget=forms.HiddenInput,
        error_messages={
            "required": "This form has no submission key; reload the page and try again.",
            "invalid": "This form's submission key is damaged; reload the page and try again.",
        },
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The labels are QFlow's variable names: what the user finds in QFlow's docs.
        for name in ("input", *ov.SYSTEM_FIELDS):
            self.fields[name].label = name
        for name, help_text in _HELP.items():
            self.fields[name].help_text = help_text
        self.workflows = list(Workflow.objects.only("id", "name", "cloud").order_by("name", "id"))
        self.fields["workflow"].choices = [
            ("", "— choose a workflow —"),
            *((str(w.id), w.name or str(w.id)) for w in self.workflows),
        ]
        for n in self._row_numbers():
            self.fields[f"var_key_{n}"] = forms.CharField(required=False, max_length=64)
            self.fields[f"var_type_{n}"] = forms.ChoiceField(
                required=False,
                choices=[(t, t) for t in ov.VARIABLE_TYPES],
                widget=forms.Select(attrs={"aria-label": f"Type {n + 1}"}),
                error_messages={"invalid_choice": "Choose String, Integer, Boolean, List or JSON."},
            )
            self.fields[f"var_value_{n}"] = forms.CharField(
                required=False, strip=False, max_length=20000
            )

    def _row_numbers(self) -> list[int]:
        """Rows of custom variables: those posted or prefilled, plus a few empty ones."""
        source = self.data if self.is_bound else self.initial
        used = {
            int(m.group(2))
            for key, value in source.items()
            if (m := _ROW.match(key)) and m.group(1) != "type" and str(value or "").strip()
        }
        top = max(used, default=-1)
        count = min(max(top + 2, DEFAULT_CUSTOM_ROWS), ov.MAX_CUSTOM_ROWS)
        return sorted(set(range(count)) | {n for n in used if n < ov.MAX_CUSTOM_ROWS})

    @property
    def custom_rows(self) -> list[tuple[forms.BoundField, forms.BoundField, forms.BoundField]]:
        return [
            (self[f"var_key_{n}"], self[f"var_type_{n}"], self[f"var_value_{n}"])
            for n in self._row_numbers()
        ]

    def workflow_object(self) -> Workflow | None:
        value = self.cleaned_data.get("workflow") if hasattr(self, "cleaned_data") else None
        value = value or (
            self.data.get("workflow") if self.is_bound else self.initial.get("workflow")
        )
        return next((w for w in self.workflows if str(w.id) == str(value)), None)

    # --- field checks -----------------------------------------------------------------

    def clean_input(self) -> dict[str, Any]:
        text = self.cleaned_data.get("input") or ""
        if not text.strip():
            return {}
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ValidationError(f"Invalid JSON: {ov.json_error(exc)}.") from None
        if not isinstance(value, dict):
            raise ValidationError(
                f"The input must be a JSON object ({{…}}), not {_json_kind(value)}."
            )
        return value

    def clean_connectorId(self) -> str:
        value = self.cleaned_data.get("connectorId", "")
        return ov.clean_uuid(value) if value.strip() else ""

    def clean_resourceGroup(self) -> str:
        value = self.cleaned_data.get("resourceGroup", "")
        return ov.clean_resource_group(value) if value.strip() else ""

    def clean_project(self) -> str:
        value = self.cleaned_data.get("project", "")
        return ov.clean_project(value) if value.strip() else ""

    def clean_oci_region(self) -> str:
        value = self.cleaned_data.get("oci_region", "")
        return ov.clean_oci_region(value) if value.strip() else ""

    def clean_compartment(self) -> str:
        value = self.cleaned_data.get("compartment", "")
        return ov.clean_compartment(value) if value.strip() else ""

    def _clean_reference(self, name: str) -> str:
        value = self.cleaned_data.get(name, "")
        return ov.clean_connector_reference(value) if value.strip() else ""

    def clean_credentials(self) -> str:
        return self._clean_reference("credentials")

    def clean_credentials_azure(self) -> str:
        return self._clean_reference("credentials_azure")

    def clean_credentials_gcp(self) -> str:
        return self._clean_reference("credentials_gcp")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        custom: dict[str, Any] = {}
        for n in self._row_numbers():
            key = (cleaned.get(f"var_key_{n}") or "").strip()
            kind = cleaned.get(f"var_type_{n}") or "String"
            text = cleaned.get(f"var_value_{n}") or ""
            if not key and not text.strip():
                continue
            if not key:
                self.add_error(f"var_key_{n}", "Give this value a variable name.")
                continue
            try:
                key = ov.clean_custom_key(key)
            except ValidationError as exc:
                self.add_error(f"var_key_{n}", exc)
                continue
            if key in custom:
                self.add_error(f"var_key_{n}", f"{key} is set twice.")
                continue
            if not text.strip() and kind != "String":
                self.add_error(f"var_value_{n}", f"Give {key} a {kind} value.")
                continue
            try:
                custom[key] = ov.convert_value(kind, text)
            except ValidationError as exc:
                self.add_error(f"var_value_{n}", exc)
        cleaned["custom_variables"] = custom
        return cleaned

    # --- what gets sent ---------------------------------------------------------------

    def variables(self) -> dict[str, Any]:
        """Only the overrides the user set, in the documented order, then the custom ones."""
        data = self.cleaned_data
        out: dict[str, Any] = {name: data[name] for name in ov.SYSTEM_FIELDS if data.get(name)}
        out.update(data.get("custom_variables") or {})
        return out

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"input": self.cleaned_data.get("input") or {}}
        variables = self.variables()
        if variables:
            body["variables"] = variables
        return body

    def notes(self) -> list[str]:
        """Things to point out in the preview; none of them blocks the run."""
        data = self.cleaned_data
        notes = []
        legacy = [name for name in ov.LEGACY_FIELDS if data.get(name)]
        if data.get("connectorId") and legacy:
            notes.append(
                f"Both connectorId and {', '.join(legacy)} are set: QFlow uses connectorId."
            )
        workflow = self.workflow_object()
        cloud = ov.cloud_name(workflow.cloud if workflow else "")
        if cloud:
            foreign = [
                name
                for name, field_cloud in ov.FIELD_CLOUD.items()
                if data.get(name) and field_cloud != cloud
            ]
            if foreign:
                notes.append(
                    f"{', '.join(foreign)} belong to another cloud; this workflow runs on {cloud}."
                )
        return notes


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
