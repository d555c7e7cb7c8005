"""Hypothesis settings for the fuzz tests: derandomized and without the example database in CI (the
same examples every run, nothing written to .hypothesis/); HYPOTHESIS_PROFILE=explore searches
further with fresh random examples each run, for a local hunt."""

from __future__ import annotations

import os
import uuid

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

hypothesis_settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
hypothesis_settings.register_profile(
    "explore",
    derandomize=False,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def examples(ci: int) -> int:
    """``ci`` examples in the CI profile; ten times as many when exploring."""
    return ci * 10 if os.environ.get("HYPOTHESIS_PROFILE") == "explore" else ci


@pytest.fixture(autouse=True)
def own_cache(settings):
    """A cache per test: the fuzzed failed logins must not throttle later tests' logins (nor write
    to a developer's Redis when REDIS_URL is set)."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    }
