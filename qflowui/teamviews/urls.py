from __future__ import annotations

from django.urls import path

from qflowui.teamviews import views

app_name = "teamviews"

urlpatterns = [
    path("", views.view_list, name="list"),
    path("nav/", views.nav, name="nav"),
    path("new/", views.view_create, name="create"),
    path("<int:pk>/", views.view_detail, name="detail"),
    path("<int:pk>/edit/", views.view_edit, name="edit"),
    path("<int:pk>/delete/", views.view_delete, name="delete"),
    path("<int:pk>/alerts/new/", views.alert_create, name="alert_create"),
    path("<int:pk>/alerts/<int:sid>/edit/", views.alert_edit, name="alert_edit"),
    path("<int:pk>/alerts/<int:sid>/delete/", views.alert_delete, name="alert_delete"),
    path("<int:pk>/alerts/<int:sid>/test/", views.alert_test, name="alert_test"),
]
