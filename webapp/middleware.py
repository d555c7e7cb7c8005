"""Keeping a request's middleware on one thread under ASGI."""

from __future__ import annotations


class SyncChainMiddleware:
    """Last in MIDDLEWARE, sync-only: every middleware above it then runs in sync mode on the
    request's thread, and Django crosses between the event loop and that thread once at the top
    and once at the view.

    Otherwise the chain is mixed: WhiteNoise is sync-only, so Django runs the middleware below it
    in async mode, where Django's own (MiddlewareMixin) run each process_request/process_response
    through sync_to_async: a round trip between the event loop and the thread for each (about a
    dozen per API request), which costs most when the CPUs are busy. With this last: +30–50%
    requests/s on the health check and the API (bench/api_status_load.py, README "Benchmarks").
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)
