"""Upstream texts in full: what a page shows cut to 10 KB (see qflow_format.TEXT_LIMIT).

A step's error and an execution's variables and tags come from QFlow and can be megabytes.
Pages show their first 10 KB with "show all", which links here: the whole text, masked like
on the page, as plain text (`?download=1`: as a file). Read from the mirror only: no call to
QFlow. Plain text with `nosniff`, so a browser never renders it as markup.
"""

from __future__ import annotations

import json
import re
from typing import Any
from uuid import UUID

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from qflowui.core.masking import mask_free_text
from qflowui.mirror.models import Execution, Step

FIELDS = ("variables", "tags")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def shown_text(value: Any) -> str:
    """One variable or tag as the detail page shows it: the string, or its JSON, masked."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return mask_free_text(text)


def _plain(text: str, status: int = 200, *, filename: str = "", download: bool = False):
    response = HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")
    response["X-Content-Type-Options"] = "nosniff"
    if filename:
        kind = "attachment" if download else "inline"
        response["Content-Disposition"] = f'{kind}; filename="{filename}"'
    return response


def _name(*parts: str) -> str:
    return "-".join(_UNSAFE.sub("_", p)[:80] for p in parts if p) + ".txt"


@require_GET
def step_error(request: HttpRequest, execution_id: UUID, node_id: str) -> HttpResponse:
    """The whole error of a step, masked."""
    step = Step.objects.filter(execution_id=execution_id, node_id=node_id).only("error").first()
    if step is None or not step.error:
        return _plain("This step has no error text.", 404)
    name = _name(str(execution_id)[:8], node_id, "error")
    return _plain(
        mask_free_text(step.error), filename=name, download=request.GET.get("download") == "1"
    )


@require_GET
def execution_text(
    request: HttpRequest, execution_id: UUID, field: str, index: int
) -> HttpResponse:
    """One of an execution's variables or tags, whole and masked."""
    if field not in FIELDS:
        return _plain("No such text.", 404)
    values = Execution.objects.filter(pk=execution_id).values_list(field, flat=True).first()
    if not isinstance(values, list) or index >= len(values):
        return _plain("No such text.", 404)
    name = _name(str(execution_id)[:8], field, str(index))
    return _plain(
        shown_text(values[index]), filename=name, download=request.GET.get("download") == "1"
    )
