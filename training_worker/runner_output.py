"""Following a short-lived runner to its end (Validate's dry run, a scoring run): its events as they
come, and the end of its console output for a message. Training sessions have their own loop
(supervisor.Supervision): they also relay output, heartbeats and stop requests as they go."""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from training_worker.events import MAX_EVENT_BYTES, BadEvent, parse_event
from training_worker.sandbox import RunnerProcess

MAX_OUTPUT_BYTES = 64 * 1024  # the end of the user's prints and warnings kept for a message


@dataclass
class Followed:
    output_tail: str
    timed_out: bool


def follow(runner: RunnerProcess, timeout: float, on_event: Callable[[dict[str, Any]], None]) -> Followed:
    """Read the runner's events (each valid one to ``on_event``; the rest is skipped: the runner's
    output is never trusted) until it exits or ``timeout`` seconds pass (then it is killed), and
    clean it up either way."""
    deadline = time.monotonic() + timeout
    pending = {runner.events_fd: b"", runner.process.stdout.fileno(): b""}
    output = b""
    timed_out = False
    selector = selectors.DefaultSelector()
    for fd in pending:
        selector.register(fd, selectors.EVENT_READ)
    try:
        while runner.events_fd in pending:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in selector.select(timeout=min(left, 1.0)):
                chunk = os.read(key.fd, 65536)
                if not chunk:  # that end closed: the runner exited
                    selector.unregister(key.fd)
                    del pending[key.fd]
                elif key.fd == runner.events_fd:
                    *lines, pending[key.fd] = (pending[key.fd] + chunk).split(b"\n")
                    for line in lines:
                        with contextlib.suppress(BadEvent):
                            on_event(parse_event(line))
                    if len(pending[key.fd]) > MAX_EVENT_BYTES:  # never an event: keep nothing of it
                        pending[key.fd] = b"\xff"  # the rest of that line is refused as not JSON
                else:  # the user's prints and warnings: only the end matters, for a message
                    output = (output + chunk)[-MAX_OUTPUT_BYTES:]
        if runner.events_fd in pending:
            runner.kill()
    finally:
        selector.close()
        os.close(runner.events_fd)
        if runner.process.stdin is not None:
            with contextlib.suppress(OSError):
                runner.process.stdin.close()
        try:
            runner.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            runner.kill()
            runner.process.wait()
        runner.process.stdout.close()
        runner.cleanup()
    return Followed(output.decode("utf-8", "replace"), timed_out)
