"""What the run form shows before the user types: a past execution or run to run again, the
workflow's declared variables, and the connector ids the mirror has seen."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from qflowui.core.masking import MASK, is_sensitive_key, mask, mask_free_text
from qflowui.mirror.models import Execution, StepPayload, Workflow
from qflowui.qflow import client_from_settings
from qflowui.qflow.errors import QflowError
from qflowui.runs import overrides as ov
from qflowui.runs.forms import masked_paths_message
from qflowui.runs.models import Run

logger = logging.getLogger(__name__)

TRIGGER_NODE = "trigger"
# Keys of a trigger's own envelope (what started it), as opposed to the run's input.
_ENVELOPE_KEYS = {"triggerType", "overrideVariables", "globalVariables", "triggeredBy"}


@dataclass
class Prefill:
    initial: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    execution: Execution | None = None
    run: Run | None = None  # the run being run again (?again=<run id>)
    # Form fields left empty (or, for the input, holding ********) because QFlow's record
    # held them masked: the form marks them "was masked in QFlow's record: enter it again".
    masked: list[str] = field(default_factory=list)


def run_prefill(*, workflow_id: str = "", from_execution: str = "", again: str = "") -> Prefill:
    """The form's initial values for `?workflow=<id>`, `?from=<execution id>` and
    `?again=<run id>` (a run that started no execution, e.g. not_started)."""
    prefill = Prefill(initial={"input": "{}"})
    if workflow_id:
        prefill.initial["workflow"] = workflow_id
    if from_execution:
        _from_execution(prefill, from_execution)
    elif again:
        _from_run(prefill, again)
    if prefill.masked:
        prefill.initial["masked"] = ",".join(prefill.masked)
    return prefill


def _from_execution(prefill: Prefill, execution_id: str) -> None:
    try:
        execution_id = str(uuid.UUID(execution_id.strip()))
    except ValueError:
        prefill.notes.append(f"“{execution_id[:80]}” is not an execution id; nothing prefilled.")
        return
    execution = Execution.objects.select_related("workflow").filter(pk=execution_id).first()
    if execution is None:
        prefill.notes.append(
            f"Execution {execution_id} is not in qflowui's mirror (yet); nothing prefilled."
        )
        return
    prefill.execution = execution
    prefill.initial["workflow"] = str(execution.workflow_id)
    correlation = settings.RUNS_CORRELATION_VARIABLE
    _variables(
        prefill,
        # The run's correlation variable is qflowui's own, set anew on every run: never copied.
        [(i.key, i.value, None) for i in ov.parse_variable_strings(execution.variables)],
        skip={correlation} if correlation else set(),
    )
    run_input, where = _trigger_input(execution)
    if run_input is None:
        prefill.notes.append(
            f"The input of execution {execution_id} could not be read ({where}); "
            "the input starts empty ({})."
        )
        run_input = {}
    else:
        prefill.notes.append(f"Input taken from {where} of execution {execution_id}.")
    _input(prefill, run_input)


def _input(prefill: Prefill, run_input: Any) -> None:
    shown = mask(run_input)
    paths = ov.masked_paths(shown)
    if paths:
        # Kept in place, so the user sees where to type; the form refuses to run while
        # the mask is left in.
        prefill.masked.append("input")
        prefill.notes.append(
            f"{masked_paths_message(paths)} (it shows as {MASK} in the input below; "
            "the form will not run while it is left in)."
        )
    prefill.initial["input"] = json.dumps(shown, indent=2)


def _from_run(prefill: Prefill, run_id: str) -> None:
    """A run's workflow, input and variables, as stored (masked once QFlow has seen it)."""
    run = Run.objects.filter(pk=int(run_id)).first() if run_id.strip().isdigit() else None
    if run is None:
        prefill.notes.append(f"“{run_id[:40]}” is not a run; nothing prefilled.")
        return
    prefill.run = run
    prefill.initial["workflow"] = str(run.workflow_id)
    variables = run.variables if isinstance(run.variables, dict) else {}
    _variables(
        prefill,
        [
            (key, value, "String") if isinstance(value, str) else (key, *ov.guess_type(value)[::-1])
            for key, value in variables.items()
        ],
        skip={run.correlation_key} if run.correlation_key else set(),
        record="this run's record",
    )
    _input(prefill, run.input if isinstance(run.input, dict) else {})


def _was_masked(key: str, value: str) -> bool:
    """QFlow's record holds this variable masked (or it is a secret we do not copy)."""
    if MASK in value or (len(value) >= 3 and set(value) == {"*"}):
        return True
    return is_sensitive_key(key) and key not in ov.LEGACY_FIELDS


def _variables(
    prefill: Prefill,
    items: list[tuple[str, str, str | None]],
    *,
    skip: set[str],
    record: str = "QFlow's record",
) -> None:
    """Fill the override fields and custom rows from (key, text, type or None: guess)."""
    row, masked, skipped = 0, [], []
    limit = ov.max_custom_variables()
    for key, value, known_kind in items:
        if key in skip:
            continue
        hidden = _was_masked(key, value)
        if key in ov.SYSTEM_FIELDS:
            if hidden:
                masked.append(key)
                prefill.masked.append(key)
            else:
                prefill.initial[key] = value
            continue
        if row >= limit:
            skipped.append(key)
            continue
        if hidden:
            # The row keeps the name and comes with an empty value to enter again.
            kind, text = "String", ""
            masked.append(key)
            prefill.masked.append(f"var_value_{row}")
        elif known_kind is not None:
            kind, text = known_kind, value
        else:
            kind, text = _typed(value)
        prefill.initial.update(
            {f"var_key_{row}": key, f"var_type_{row}": kind, f"var_value_{row}": text}
        )
        row += 1
    if masked:
        prefill.notes.append(
            f"{', '.join(masked)} {'was' if len(masked) == 1 else 'were'} masked in {record}: "
            f"enter {'it' if len(masked) == 1 else 'them'} again (left empty below)."
        )
    if skipped:
        prefill.notes.append(
            f"Not copied (more than {limit} custom variables): {', '.join(skipped)}."
        )


def _typed(text: str) -> tuple[str, str]:
    try:
        value = json.loads(text)
    except ValueError:
        return "String", text
    if isinstance(value, str):
        return "String", text
    return ov.guess_type(value)


def _trigger_input(execution: Execution) -> tuple[dict[str, Any] | None, str]:
    """The input the run was started with, and where it was found.

    QFlow hands the run's input to the trigger node: the trigger step's input holds it
    (possibly wrapped in the trigger's own envelope) and its output passes it on.
    """
    cached = {
        p.kind: p.body
        for p in StepPayload.objects.filter(execution=execution, node_id=TRIGGER_NODE)
    }
    found = _from_trigger_input(cached.get(StepPayload.INPUT))
    if found is not None:
        return found, "the trigger step's input"
    if isinstance(cached.get(StepPayload.OUTPUT), dict):
        return cached[StepPayload.OUTPUT], "the trigger step's output"
    try:
        client = client_from_settings(max_retries=0)
        if StepPayload.INPUT not in cached:
            found = _from_trigger_input(client.get_step_input(str(execution.pk), TRIGGER_NODE))
            if found is not None:
                return found, "the trigger step's input"
        output = client.get_step_output(str(execution.pk), TRIGGER_NODE)
    except QflowError as exc:
        reason = mask_free_text(str(exc))[:500]
        logger.info("prefill from %s: trigger payload unavailable: %s", execution.pk, reason)
        return None, f"QFlow: {reason}"
    if isinstance(output, dict):
        return output, "the trigger step's output"
    return None, "the trigger step holds no JSON object"


def _from_trigger_input(payload: Any) -> dict[str, Any] | None:
    if not isinstance(payload, dict):
        return None
    if isinstance(payload.get("input"), dict):
        return payload["input"]
    if _ENVELOPE_KEYS & payload.keys():
        return None  # the trigger's own metadata, not the run's input
    return payload


# --- what the form offers ---------------------------------------------------------------------


def workflow_variables(workflow: Workflow | None) -> list[dict[str, Any]]:
    """The variables the workflow's definition declares, masked, as {key, values, sensitive}."""
    if workflow is None or not isinstance(workflow.definition, dict):
        return []
    out = []
    for item in workflow.definition.get("variables") or []:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            continue
        values = item.get("value")
        values = values if isinstance(values, list) else [values]
        shown = mask({"key": item["key"], "value": values})["value"]
        out.append(
            {
                "key": item["key"],
                "values": [v if isinstance(v, str) else json.dumps(v) for v in shown],
                "sensitive": shown != values or is_sensitive_key(item["key"]),
            }
        )
    return out


def connector_ids_seen(workflow: Workflow | None = None, limit: int = 400) -> list[str]:
    """Connector UUIDs seen in the mirror: executions' accounts and variables, definitions."""
    seen: dict[str, int] = {}

    def add(value: Any) -> None:
        if isinstance(value, str) and value.strip():
            try:
                key = ov.clean_uuid(value)
            except Exception:  # noqa: BLE001 - not a connector reference
                return
            seen[key] = seen.get(key, 0) + 1

    recent = Execution.objects.order_by("-started_at").values_list("categories", "variables")
    rows = list(recent[:limit])
    if workflow is not None:
        rows += list(recent.filter(workflow=workflow)[: limit // 2])
    for categories, variables in rows:
        if isinstance(categories, dict):
            for account in categories.get("accounts") or []:
                add(account)
        for item in ov.parse_variable_strings(variables if isinstance(variables, list) else []):
            if item.key == "connectorId" or item.key in ov.LEGACY_FIELDS:
                add(item.value)
    for definition in Workflow.objects.exclude(definition=None).values_list(
        "definition", flat=True
    ):
        if not isinstance(definition, dict):
            continue
        for item in definition.get("variables") or []:
            if isinstance(item, dict) and item.get("key") in ("connectorId", *ov.LEGACY_FIELDS):
                for value in item.get("value") or []:
                    add(value)
    return sorted(seen, key=lambda k: (-seen[k], k))
