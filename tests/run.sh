#!/usr/bin/env bash
# The whole suite, as `make test` and CI run it. REDIS_URL and DATABASE_URL, when set, make the
# distributed journey run against real Redis, PostgreSQL and a Celery worker.
set -euo pipefail
cd "$(dirname "$0")/.."
export DJANGO_ALLOW_ASYNC_UNSAFE=true  # Channels' live server + Playwright's sync API in one process
.venv/bin/ruff check .
.venv/bin/ruff format --check .
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$status"
