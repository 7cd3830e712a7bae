"""How run bodies and QFlow's messages are shown and kept: masked, except the connector
references the user chose."""

from __future__ import annotations

import json
import re
from typing import Any

from qflowui.core.masking import mask, mask_free_text
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


def masked_body_fields(run_input: Any, variables: Any) -> dict[str, Any]:
    """A run's `input` and `variables` as they are kept once QFlow has seen them: masked.

    The exact body is needed only until it is posted; its digest (body_sha256) stays, so
    the same form posted again still finds the run.
    """
    return {
        "input": mask(run_input if run_input is not None else {}),
        "variables": shown_variables(variables if isinstance(variables, dict) else {}),
    }


MAX_TEXT = 10_000


def shown_text(text: Any, limit: int = MAX_TEXT) -> str:
    """QFlow's free text (an error, a message) masked, then cut to `limit` characters.

    Masked before it is cut, so a cut never leaves part of a secret unmasked.
    """
    if not text:
        return ""
    text = mask_free_text(str(text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown_json(value: Any) -> str:
    """A JSON value from QFlow (its answer to a run) as indented text, masked."""
    return json.dumps(mask(value), indent=2)
