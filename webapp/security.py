"""Response headers and login throttling (README "Security").

``ContentSecurityPolicyMiddleware`` sends settings.CONTENT_SECURITY_POLICY with every response.

Login throttling: failed logins are counted in the cache (Redis in the distributed deployment, so
every web process sees the same counts) per username and client address, and per address. Past
``LOGIN_FAILURE_LIMIT`` failures for one username from one address (or ``LOGIN_FAILURE_IP_LIMIT``
from one address), logging in answers 429 until the window, counted from the first failure, ends;
even the right password, or guessing could go on. A cache that cannot be reached lets logins
through (a warning is logged): throttling must never lock everybody out.
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils.deprecation import MiddlewareMixin

log = logging.getLogger(__name__)


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """Adds the Content-Security-Policy header (unless a view set its own); sync and async."""

    def process_response(self, request, response):
        if settings.CONTENT_SECURITY_POLICY:
            response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response


# ---------------------------------------------------------------- login throttling


def client_address(request: HttpRequest) -> str:
    """The client's address (uvicorn has already applied a trusted proxy's X-Forwarded-For)."""
    return request.META.get("REMOTE_ADDR") or "unknown"


def _keys(username: str, address: str) -> tuple[str, str]:
    name = hashlib.sha256(username.strip().lower().encode("utf-8", "replace")).hexdigest()[:32]
    where = hashlib.sha256(address.encode("utf-8", "replace")).hexdigest()[:32]
    return f"login-failures:{name}:{where}", f"login-failures-ip:{where}"


def throttled(username: str, address: str) -> str | None:
    """The message refusing this login attempt, or None when it may go on."""
    pair, ip = _keys(username, address)
    try:
        counts = cache.get_many([pair, ip])
    except Exception:
        log.warning("login throttling is off: the cache cannot be read", exc_info=True)
        return None
    if (
        counts.get(pair, 0) < settings.LOGIN_FAILURE_LIMIT
        and counts.get(ip, 0) < settings.LOGIN_FAILURE_IP_LIMIT
    ):
        return None
    minutes = max(1, round(settings.LOGIN_FAILURE_WINDOW_SECONDS / 60))
    return (
        "Too many failed logins from your address; logging in is refused for up to "
        f"{minutes} minute{'s' if minutes != 1 else ''} from the first failure. Try again later."
    )


def record_failure(username: str, address: str) -> None:
    for key in _keys(username, address):
        try:
            # add() starts the window at the first failure; incr() keeps its expiry.
            cache.add(key, 0, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS)
            cache.incr(key)
        except ValueError:  # expired between add and incr: a new window
            cache.add(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS)
        except Exception:
            log.warning("could not count a failed login", exc_info=True)


def record_success(username: str, address: str) -> None:
    """The right password: this username's failures from this address are forgotten."""
    try:
        cache.delete(_keys(username, address)[0])
    except Exception:
        log.warning("could not reset the failed-login count", exc_info=True)


def retry_after() -> str:
    return str(settings.LOGIN_FAILURE_WINDOW_SECONDS)


class LoginThrottleBackend:
    """First of AUTHENTICATION_BACKENDS: past the limits, no backend checks the password (so the admin's
    login form is throttled too; the login page and the API answer 429 before getting here). No
    ``get_user``: sessions are never attributed to this backend."""

    def authenticate(self, request, username=None, **credentials):
        if request is not None and username is not None and throttled(str(username), client_address(request)):
            raise PermissionDenied("throttled")  # stops authenticate(); user_login_failed is sent
        return None


@receiver(user_login_failed)
def _count_failure(sender, credentials, request=None, **kwargs) -> None:
    """Every failed authenticate() with a request: the login page, the admin's, POST /api/token/."""
    if request is not None:
        record_failure(str(credentials.get("username", "")), client_address(request))


class ThrottledLoginView(auth_views.LoginView):
    """Django's login form, refusing with 429 (and the message) past the failure limits."""

    def post(self, request, *args, **kwargs):
        username = str(request.POST.get("username", ""))
        message = throttled(username, client_address(request))
        if message is not None:  # the password is not even checked
            form = self.get_form_class()(request, initial={"username": username})
            context = self.get_context_data(form=form, throttled=message)
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = retry_after()
            return response
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        record_success(form.get_user().get_username(), client_address(self.request))
        return super().form_valid(form)
