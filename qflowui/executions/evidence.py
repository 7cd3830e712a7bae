"""`/executions/<id>/evidence.zip`: the evidence bundle of one execution, for a ticket.

The view only loads the execution as its page does (a 404 or 503 page when it cannot) and
streams the zip; what goes in it, and its check, are in evidence_bundle.py. Access is the
execution page's: a login, and the Viewers or Runners group (DataAccessMiddleware).
"""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET

from qflowui.executions.detail import answers_unavailable, load_or_unavailable
from qflowui.executions.evidence_bundle import evidence_stream


@require_GET
@answers_unavailable
def evidence_zip(request: HttpRequest, execution_id: uuid.UUID) -> HttpResponse:
    detail = load_or_unavailable(request, execution_id)
    response = StreamingHttpResponse(
        evidence_stream(detail, request=request), content_type="application/zip"
    )
    response["Content-Disposition"] = content_disposition_header(
        True, f"evidence-{execution_id}.zip"
    )
    response["Cache-Control"] = "no-store"
    return response
