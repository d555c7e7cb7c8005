from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views.defaults import page_not_found

from analyses.api import api
from webapp.security import ThrottledLoginView

urlpatterns = [
    path("api/", api.urls),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("analyses.pages")),
]


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """API clients get the API's error shape for unknown paths too; people get the HTML page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": f"No API endpoint at {request.path}; see /api/docs/."}, status=404)
    return page_not_found(request, exception)


handler404 = not_found
