"""Staff manage users and their groups (Viewers, Runners) in Django's admin."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

pytestmark = pytest.mark.django_db


def test_staff_can_put_a_user_in_the_runners_group(client, admin_user, viewer):
    client.force_login(admin_user)
    page = client.get(f"/admin/auth/user/{viewer.pk}/change/")
    assert page.status_code == 200
    runners = Group.objects.get(name="Runners")
    assert f'value="{runners.pk}"' in page.content.decode()


def test_a_user_who_is_not_staff_cannot_open_the_admin(viewer_client):
    response = viewer_client.get("/admin/auth/user/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_anonymous_visitors_get_the_admin_login(client):
    response = client.get("/admin/", follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0].startswith("/admin/login/")
