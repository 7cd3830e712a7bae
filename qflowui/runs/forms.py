"""The run form. The server is the authority on every value; the page's JavaScript only helps."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from qflowui.core.masking import MASK
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
_ROW = re.compile(r"^var_(key|type|value)_(\d{1,4})$")
DEFAULT_CUSTOM_ROWS = 3
MASKED_NOTE = "was masked in QFlow's record: enter it again"


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
    # Fields "run again with changes" left empty because QFlow's record held them masked,
    # comma-separated (kept through previews so the note stays beside them).
    masked = forms.CharField(required=False, widget=forms.HiddenInput, max_length=2000)
    idempotency_key = forms.UUIDField(
        widget=forms.HiddenInput,
        error_messages={
            "required": "This form has no submission key; reload the page and try again.",
            "invalid": "This form's submission key is damaged; reload the page and try again.",
        },
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The overrides' labels are QFlow's variable names: what the user finds in QFlow's docs.
        # Every label is the name the page shows, and the one error messages use.
        for name in ov.SYSTEM_FIELDS:
            self.fields[name].label = name
        self.fields["workflow"].label = "Workflow"
        self.fields["input"].label = "Input"
        self.fields["masked"].label = "Masked fields"
        self.fields["idempotency_key"].label = "Submission key"
        for name, help_text in _HELP.items():
            self.fields[name].help_text = help_text
        self.workflows = list(Workflow.objects.only("id", "name", "cloud").order_by("name", "id"))
        self.fields["workflow"].choices = [
            ("", "— choose a workflow —"),
            *((str(w.id), w.name or str(w.id)) for w in self.workflows),
        ]
        self.fields["input"].widget.attrs["data-max-bytes"] = str(ov.max_input_bytes())
        self.row_numbers = self._row_numbers()
        for position, n in enumerate(self.row_numbers, start=1):
            # Named as the page shows them: row 1, 2, 3... whatever numbers were posted.
            label = f"Custom variable {position}"
            self.fields[f"var_key_{n}"] = forms.CharField(
                required=False, max_length=64, label=f"{label} name"
            )
            self.fields[f"var_type_{n}"] = forms.ChoiceField(
                required=False,
                label=f"{label} type",
                choices=[(t, t) for t in ov.VARIABLE_TYPES],
                widget=forms.Select(attrs={"aria-label": f"{label} type"}),
                error_messages={"invalid_choice": "Choose String, Integer, Boolean, List or JSON."},
            )
            self.fields[f"var_value_{n}"] = forms.CharField(
                required=False, strip=False, label=f"{label} value"
            )
        self.masked_names = self._masked_names()
        for name in self.masked_names:
            if name != "input":
                self.fields[name].masked_note = MASKED_NOTE
        if "input" in self.masked_names and not self.is_bound:
            paths = _masked_input_paths(str(self.initial.get("input") or ""))
            if paths:
                self.fields["input"].masked_note = masked_paths_message(paths)

    def _used_rows(self) -> list[int]:
        """Custom-variable rows with a name or a value, posted or prefilled."""
        source = self.data if self.is_bound else self.initial
        return sorted(
            {
                int(m.group(2))
                for key, value in source.items()
                if (m := _ROW.match(key)) and m.group(1) != "type" and str(value or "").strip()
            }
        )

    def _row_numbers(self) -> list[int]:
        """Rows of custom variables: those posted or prefilled, plus a few empty ones."""
        used = self._used_rows()
        spare = max(DEFAULT_CUSTOM_ROWS - len(used), 1)
        if len(used) >= ov.max_custom_variables():
            spare = 0
        numbers, n = set(used), 0
        while spare:
            if n not in numbers:
                numbers.add(n)
                spare -= 1
            n += 1
        return sorted(numbers)

    def _masked_names(self) -> list[str]:
        raw = self.data.get("masked") if self.is_bound else self.initial.get("masked")
        names = {name.strip() for name in str(raw or "").split(",")}
        allowed = {"input", *ov.SYSTEM_FIELDS, *(f"var_value_{n}" for n in self.row_numbers)}
        return sorted(names & allowed)

    @property
    def custom_rows(self) -> list[tuple[forms.BoundField, forms.BoundField, forms.BoundField]]:
        return [
            (self[f"var_key_{n}"], self[f"var_type_{n}"], self[f"var_value_{n}"])
            for n in self.row_numbers
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
        value = ov.parse_json(
            text,
            what="the input",
            max_bytes=ov.max_input_bytes(),
            max_depth=ov.max_input_depth(),
            invalid="Invalid JSON",
        )
        if not isinstance(value, dict):
            raise ValidationError(
                f"The input must be a JSON object ({{…}}), not {_json_kind(value)}."
            )
        paths = ov.masked_paths(value)
        if paths:
            # Sending "********" as a password would be a run that fails late, or worse.
            raise ValidationError(
                f"{masked_paths_message(paths)}. The input still holds {MASK} there, which "
                "would be sent as is; nothing was run."
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
        limit = ov.max_custom_variables()
        used = self._used_rows()
        if len(used) > limit:
            self.add_error(
                None,
                f"At most {limit} custom variables can be set; this form has {len(used)}. "
                "Remove some (empty a row's name and value) and preview again. Nothing was run.",
            )
        for n in self.row_numbers:
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
            size = ov.utf8_size(text)
            if size > ov.max_variable_bytes():
                self.add_error(
                    f"var_value_{n}",
                    f"The value of {key} is {ov.size_text(size)}; "
                    f"the limit is {ov.size_text(ov.max_variable_bytes())} per variable.",
                )
                continue
            if MASK in text:
                self.add_error(
                    f"var_value_{n}",
                    f"{key} {MASKED_NOTE}: it still holds {MASK}, which would be sent as is.",
                )
                continue
            if not text and f"var_value_{n}" in self.masked_names:
                self.add_error(
                    f"var_value_{n}",
                    f"{key} {MASKED_NOTE} (or empty its name to leave it out).",
                )
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
        left_empty = [n for n in self.masked_names if n in ov.SYSTEM_FIELDS and not data.get(n)]
        if left_empty:
            notes.append(
                f"{', '.join(left_empty)} {'was' if len(left_empty) == 1 else 'were'} masked in "
                "QFlow's record and left empty: not sent, so the workflow's own value applies."
            )
        legacy = [name for name in ov.LEGACY_FIELDS if data.get(name)]
        if data.get("connectorId") and legacy:
            notes.append(
                f"Both connectorId and {', '.join(legacy)} are set: QFlow uses connectorId."
            )
        workflow = self.workflow_object()
        custom = data.get("custom_variables") or {}
        if custom and workflow is not None and declared_variables(workflow) is None:
            notes.append(
                "This workflow's definition is not in the mirror yet, so the custom variables "
                "could not be checked against the variables it declares."
            )
        return notes

    def warnings(self) -> list[str]:
        """What is probably a mistake, but may be meant: the preview says so, the user may
        still confirm. A variable the workflow's definition does not declare, an override
        for another cloud than the workflow's."""
        data = self.cleaned_data
        workflow = self.workflow_object()
        if workflow is None:
            return []
        out = []
        declared = declared_variables(workflow)
        if declared is not None:
            by_lower = {key.lower(): key for key in declared}
            for key in data.get("custom_variables") or {}:
                if key in declared:
                    continue
                near = by_lower.get(key.lower())
                hint = f" (it declares {near}: a different case is a different variable)"
                out.append(
                    f"{key} is not a variable this workflow declares"
                    f"{hint if near else ''}: QFlow will most likely ignore it."
                )
        cloud = ov.cloud_name(workflow.cloud)
        if cloud:
            foreign = [
                f"{name} ({field_cloud})"
                for name, field_cloud in ov.FIELD_CLOUD.items()
                if data.get(name) and field_cloud != cloud
            ]
            if foreign:
                what = "is an override" if len(foreign) == 1 else "are overrides"
                out.append(
                    f"{_and(foreign)} {what} for another cloud: this workflow runs on {cloud}, "
                    "so QFlow will most likely ignore "
                    f"{'it' if len(foreign) == 1 else 'them'}."
                )
        return out


def declared_variables(workflow: Workflow) -> set[str] | None:
    """The variable names the workflow's definition declares; None when it is not mirrored."""
    if not isinstance(workflow.definition, dict):
        return None
    items = workflow.definition.get("variables") or []
    return {
        item["key"]
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict) and isinstance(item.get("key"), str)
    }


def _and(items: list[str]) -> str:
    """a, b and c"""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def masked_paths_message(paths: list[str]) -> str:
    """input.db.password was masked in QFlow's record: enter it again"""
    if len(paths) == 1:
        return f"{paths[0]} {MASKED_NOTE}"
    return f"{', '.join(paths)} were masked in QFlow's record: enter them again"


def _masked_input_paths(text: str) -> list[str]:
    if MASK not in text:
        return []
    try:
        value = ov.parse_json(
            text, what="the input", max_bytes=ov.max_input_bytes(), max_depth=ov.max_input_depth()
        )
    except ValidationError:
        return []
    return ov.masked_paths(value)


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
