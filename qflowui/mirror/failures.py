"""Why an execution failed, kept on its row: the failing step, its error, and the group key.

The failing step and its (masked) error are copied onto the execution whenever its steps are
stored (`upsert_steps`), so the list and `/failures/` read them with no join and no upstream
call. Errors that differ only by their variable parts (ids, ARNs, account ids, addresses,
numbers, times, quoted names) share one *pattern*; the *failure key* hashes workflow, step
and pattern, so "the same failure" is one indexed equality.

Everything here is regular expressions over bounded text: no recursion, nothing executed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

from qflowui.core.masking import mask_free_text
from qflowui.mirror import status as st

MESSAGE_LIMIT = 4000  # characters of the error kept on the execution (full text: the step)
PATTERN_LIMIT = 300
FIRST_LINE_LIMIT = 200
FAILURE_CLASSES = (st.FAILED, st.TIMED_OUT)

# Ordered: the specific shapes first, so an ARN is one placeholder, not a dozen numbers.
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\barn:[\w-]+:[\w-]*:[\w-]*:\d*:[^\s\"',;)]+"), "<arn>"),
    (re.compile(r"/subscriptions/[^\s\"',;)]+"), "<azure-resource>"),
    (re.compile(r"\bprojects/[^\s\"',;)]+"), "<gcp-resource>"),
    (re.compile(r"\bocid1\.[\w.-]+"), "<ocid>"),
    (
        re.compile(
            r"\b[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b", re.IGNORECASE
        ),
        "<uuid>",
    ),
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
            r"(?:Z|[+-]\d{2}:?\d{2})?)?\b"
        ),
        "<time>",
    ),
    (re.compile(r"\b\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\b"), "<time>"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?\b"), "<ip>"),
    (re.compile(r"\b(?:[0-9a-f]{1,4}:){2,7}[0-9a-f]{1,4}\b", re.IGNORECASE), "<ip>"),
    # AWS-style resource ids (i-0663…, sg-0a1b…, vol-…) and any word-dash-hex id.
    (re.compile(r"\b[a-z][a-z0-9]*-[0-9a-f]{6,}\b", re.IGNORECASE), "<id>"),
    (re.compile(r"\b\d{12}\b"), "<account>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", re.IGNORECASE), "<hex>"),
    (re.compile(r"'[^'\n]{1,200}'"), "'<name>'"),
    (re.compile(r"\"[^\"\n]{1,200}\""), '"<name>"'),
    (re.compile(r"“[^”\n]{1,200}”"), "“<name>”"),
    (re.compile(r"\b\d+(?:\.\d+)?\b"), "<n>"),
    (re.compile(r"\s+"), " "),
]


def error_pattern(text: str) -> str:
    """The error with its variable parts replaced by placeholders: what failures share."""
    pattern = (text or "")[:MESSAGE_LIMIT]
    for regex, placeholder in _RULES:
        pattern = regex.sub(placeholder, pattern)
    pattern = pattern.strip()
    return pattern if len(pattern) <= PATTERN_LIMIT else pattern[: PATTERN_LIMIT - 1] + "…"


def failure_key(workflow_id: Any, node_id: str, pattern: str) -> str:
    """One group of failures: same workflow, same failing step, same error pattern."""
    raw = f"{workflow_id}\x00{node_id}\x00{pattern}".encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def first_line(text: str) -> str:
    line = (text or "").strip().split("\n", 1)[0].strip()
    return line if len(line) <= FIRST_LINE_LIMIT else line[: FIRST_LINE_LIMIT - 1] + "…"


def failing_step(steps: Iterable[Any]) -> Any | None:
    """The step that made the execution fail: the first failed or timed-out one in order,
    else the first cancelled one."""
    ordered = sorted(
        steps,
        key=lambda s: (
            s.event_order is None,
            s.event_order if s.event_order is not None else 0,
            s.started_at is None,
            s.started_at.timestamp() if s.started_at is not None else 0.0,
            s.node_id,
        ),
    )
    return first_failing(ordered)


def first_failing(steps: Iterable[Any]) -> Any | None:
    """In the order given: the first failed or timed-out step, else the first cancelled one."""
    steps = list(steps)
    for wanted in (FAILURE_CLASSES, (st.CANCELLED,)):
        for step in steps:
            if step.status_class in wanted:
                return step
    return None


def step_names(definition: Any) -> dict[str, str]:
    """Node id → the component's name in a workflow definition; {} when unreadable."""
    from qflowui.qflow.errors import QflowBadResponse
    from qflowui.qflow.parse import parse_definition

    if not definition:
        return {}
    try:
        parsed = parse_definition(definition)
    except QflowBadResponse:
        return {}
    return {node.id: node.name for node in parsed.nodes if node.name}


def failure_fields(
    workflow_id: Any, definition: Any, steps: Iterable[Any], names: dict[str, str] | None = None
) -> dict[str, str]:
    """The failure columns of an execution from its steps (empty when no step failed)."""
    step = failing_step(steps)
    if step is None:
        return {
            "failure_node_id": "",
            "failure_step": "",
            "failure_message": "",
            "failure_pattern": "",
            "failure_key": "",
        }
    if names is None:
        names = step_names(definition)
    # Stored steps are masked already; masking again (idempotent) keeps this true for any
    # caller.
    message = mask_free_text((step.error or "").strip()[:MESSAGE_LIMIT])
    pattern = error_pattern(message)
    return {
        "failure_node_id": step.node_id[:200],
        "failure_step": (names.get(step.node_id) or step.node_id)[:300],
        "failure_message": message,
        "failure_pattern": pattern,
        "failure_key": failure_key(workflow_id, step.node_id, pattern),
    }


def failure_apply(execution: Any) -> None:
    """Recompute and store the failure columns of one execution from its stored steps."""
    from qflowui.mirror.models import Execution, Step

    steps = list(
        Step.objects.filter(execution_id=execution.pk).only(
            "node_id", "status_class", "event_order", "started_at", "error"
        )
    )
    definition = getattr(execution.workflow, "definition", None)
    fields = failure_fields(execution.workflow_id, definition, steps)
    Execution.objects.filter(pk=execution.pk).update(**fields)
    for name, value in fields.items():
        setattr(execution, name, value)
