from __future__ import annotations

from django.urls import path
from django.views.generic import RedirectView

from qflowui.runs import views

app_name = "runs"

urlpatterns = [
    path("", views.run_list, name="list"),
    path("new/", views.run_new, name="new"),
    # The audit log moved to /audit/ (it is the team's now, not only the runs').
    path("audit/", RedirectView.as_view(url="/audit/", query_string=True), name="audit"),
    path("scheduler/", views.scheduler_status, name="scheduler"),
    path("<int:pk>/", views.run_detail, name="detail"),
    path("<int:pk>/review/", views.run_review_decide, name="review"),
]
