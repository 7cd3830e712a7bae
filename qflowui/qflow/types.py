"""Typed records the client returns. Built by :mod:`qflowui.qflow.parse`.

Every record keeps the JSON object it came from in ``raw``, so a field QFlow adds
later is still reachable without a client change. Datetimes are aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    page_number: int | None = None
    page_size: int | None = None
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class Variable:
    key: str
    value: Any


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    name: str
    type: str
    inputs: dict[str, Any]
    next_ids: list[str]
    previous_ids: list[str]


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    # The branch name when ``next`` was a mapping ({"true": ..., "false": ...}).
    label: str | None = None


@dataclass(frozen=True, slots=True)
class WorkflowDefinition:
    variables: list[Variable]
    nodes: list[Node]
    edges: list[Edge]
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class Workflow:
    id: str
    name: str
    description: str
    category: str | None
    cloud_providers: list[str]
    deployed: bool | None
    created_at: datetime | None
    updated_at: datetime | None
    tags: list[str]
    created_by: str | None
    revision: str | None
    definition: WorkflowDefinition | None
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class Step:
    id: str | None
    execution_id: str | None
    node_id: str
    node_type: str | None
    status: str
    event_order: int | None
    created_at: datetime | None
    updated_at: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    error: str | None
    tags: list[str]
    par_date_key: str | None
    # Only filled by ``includeData=true``; None otherwise (or when the payload is JSON null).
    input: Any
    output: Any
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class Execution:
    id: str
    workflow_id: str | None
    status: str
    source: str | None
    execution_type: str | None
    customer_id: str | None
    created_at: datetime | None
    updated_at: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    tags: list[str]
    created_by: str | None
    categories: dict[str, list[Any]]
    variables: list[Any]
    parent_execution_id: str | None
    linked_execution_ids: list[str]
    par_date_key: str | None
    # None unless the execution was fetched with includeSteps and QFlow sent steps.
    steps: list[Step] | None
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class RunResult:
    execution_id: str
    message: str | None
    workflow_id: str | None
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    limit: int | None = None
    window_sec: int | None = None
    remaining: int | None = None
    to_wait_sec: int | None = None
    concurrency_limit: int | None = None
    concurrency_running: int | None = None


__all__ = [
    "Edge",
    "Execution",
    "Node",
    "Page",
    "RateLimitInfo",
    "RunResult",
    "Step",
    "Variable",
    "Workflow",
    "WorkflowDefinition",
]
