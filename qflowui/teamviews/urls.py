from __future__ import annotations

app_name = "teamviews"

urlpatterns: list = []
