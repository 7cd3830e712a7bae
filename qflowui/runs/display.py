"""How run bodies are shown: masked, except the connector references the user chose."""

from __future__ import annotations

import json
import re
from typing import Any

from qflowui.core.masking import mask
from qflowui.runs.overrides import LEGACY_FIELDS

# "@<uuid>" names a connector, it is not a secret (the form only accepts this shape).
_CONNECTOR_REFERENCE = re.compile(
    r"^@[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)


def shown_variables(variables: dict[str, Any] | None) -> dict[str, Any]:
    variables = variables or {}
    shown = mask(variables)
    for key in LEGACY_FIELDS:
        value = variables.get(key)
        if isinstance(value, str) and _CONNECTOR_REFERENCE.match(value):
            shown[key] = value
    return shown


def shown_body(body: dict[str, Any]) -> str:
    """The body as indented JSON text, secrets masked."""
    shown = {"input": mask(body.get("input") or {})}
    if "variables" in body:
        shown["variables"] = shown_variables(body["variables"])
    return json.dumps(shown, indent=2)
