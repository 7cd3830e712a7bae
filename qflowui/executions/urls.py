from __future__ import annotations

from django.urls import path

from qflowui.executions import compare_views, detail, evidence, texts, views

app_name = "executions"

urlpatterns = [
    path("", views.execution_list, name="list"),
    path("sync/", views.sync_now, name="sync"),
    # Two executions side by side (qflowui/executions/compare_views.py).
    path("compare/", compare_views.compare, name="compare"),
    path("compare/node/", compare_views.compare_node, name="compare_node"),
    # Execution detail, its step panels and their payloads (qflowui/executions/detail.py).
    path("<uuid:execution_id>/", detail.execution_detail, name="detail"),
    path("<uuid:execution_id>/export.json", detail.execution_export, name="export"),
    # The signed evidence bundle for a ticket (qflowui/executions/evidence.py).
    path("<uuid:execution_id>/evidence.zip", evidence.evidence_zip, name="evidence"),
    path("<uuid:execution_id>/steps/<str:node_id>/", detail.step_panel, name="step"),
    # Upstream texts shown cut to 10 KB, whole (qflowui/executions/texts.py).
    path("<uuid:execution_id>/steps/<str:node_id>/error.txt", texts.step_error, name="step_error"),
    path(
        "<uuid:execution_id>/texts/<str:field>/<int:index>.txt",
        texts.execution_text,
        name="text",
    ),
    path(
        "<uuid:execution_id>/steps/<str:node_id>/input/tree",
        detail.payload_tree,
        {"kind": "input"},
        name="input_tree",
    ),
    path(
        "<uuid:execution_id>/steps/<str:node_id>/output/tree",
        detail.payload_tree,
        {"kind": "output"},
        name="output_tree",
    ),
    path(
        "<uuid:execution_id>/steps/<str:node_id>/input.json",
        detail.payload_download,
        {"kind": "input"},
        name="input_download",
    ),
    path(
        "<uuid:execution_id>/steps/<str:node_id>/output.json",
        detail.payload_download,
        {"kind": "output"},
        name="output_download",
    ),
]
