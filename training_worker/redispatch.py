"""Distributed mode: queued work whose broker message was lost is dispatched again.

Redis keeps nothing on disk on these machines: a restart, a ``FLUSHALL`` or an eviction loses the
Celery messages of sessions (and scoring jobs) that are still ``queued`` in the database, and
nothing would ever take them. The web process's reaper loop (training_worker.recovery) calls
``redispatch_lost_work`` every few seconds; it looks only at rows queued for longer than
``SESSION_REDISPATCH_AFTER_SECONDS`` (younger ones may not be dispatched yet: dispatch happens
after the commit) and costs one query when there are none.

Where can a queued row's message be? A message moves one way through these stages, and they are
read in that order, so a message that moves while it is being looked for is met again at a later
stage rather than missed:

1. the queue itself: the Redis lists ``training`` and ``training.gpu`` (and their priority lists);
2. delivered to a worker that has not started it: kombu's ``unacked`` hash (tasks are acked early,
   when they start, so only prefetched messages are there); a worker lists them as ``reserved``;
3. started by a worker: acked, listed as ``active`` (``celery inspect``);
4. claimed: the row is no longer ``queued`` (checked again last, just before dispatching).

A row found at none of them is dispatched again. An ``unacked`` entry older than the threshold
that no live worker lists as reserved belongs to a worker that was killed with it prefetched
(kombu would restore it only after its visibility timeout, an hour): it counts as lost too.
Workers take a message only when a slot is free (``CELERY_WORKER_DISABLE_PREFETCH``), so such
entries live milliseconds, between kombu's delivery and the task's start.

Why this never trains a session twice: the reconciler only ever *adds* a message, and a session
runs only after the atomic claim (supervisor.claim: ``queued → starting`` by a conditional
UPDATE; scoring jobs: ``queued → running`` likewise). Whatever the reconciler gets wrong (a
message in flight between two stages it could not see, a worker too busy to answer ``inspect``
within its timeout, two web processes reconciling at once, an old message kombu restores later)
ends in a duplicate delivery that finds nothing to claim and returns at once. Looking for the
message first only keeps those duplicates rare; a lease in Redis (``SET NX EX``, one per row)
keeps several web processes, and consecutive passes, from dispatching the same row again before
the first new message could have been seen.

The queues' exchange bindings are declared again on every pass that dispatches: ``FLUSHALL``
deletes kombu's binding tables too, and a producer that declared its queue before (kombu caches
declarations per connection) would publish into an exchange bound to nothing, where Redis drops
the message without a word.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

log = logging.getLogger(__name__)

TRAIN_TASK = "training_worker.tasks.train_session"
SCORE_TASK = "training_worker.tasks.score_dataset"
LEASE_KEY = "dlstudio:redispatched:{task}:{id}"
INSPECT_TIMEOUT_SECONDS = 1.0
PRIORITY_SEPARATOR = "\x06\x16"  # kombu's Redis transport: "<queue>\x06\x16<priority>"


@dataclass(frozen=True)
class Kind:
    """One kind of queued work: which task carries it, and how to find and send its rows."""

    task: str
    queued: Callable[[Any], list[int]]  # ids queued since before a cutoff
    still_queued: Callable[[int], bool]
    dispatch: Callable[[int], None]


def _queued_sessions(cutoff: Any) -> list[int]:
    from analyses.models import Session
    from training_worker.events import Status

    rows = Session.objects.filter(status=Status.QUEUED, queued_at__lte=cutoff)
    return list(rows.order_by("id").values_list("pk", flat=True))


def _session_queued(session_id: int) -> bool:
    from analyses.models import Session
    from training_worker.events import Status

    return Session.objects.filter(pk=session_id, status=Status.QUEUED).exists()


def _queued_scoring_jobs(cutoff: Any) -> list[int]:
    from analyses.models import ScoringJob

    rows = ScoringJob.objects.filter(status=ScoringJob.Status.QUEUED, created_at__lte=cutoff)
    return list(rows.order_by("id").values_list("pk", flat=True))


def _scoring_job_queued(job_id: int) -> bool:
    from analyses.models import ScoringJob

    return ScoringJob.objects.filter(pk=job_id, status=ScoringJob.Status.QUEUED).exists()


def _dispatch_session(session_id: int) -> None:
    from training_worker.dispatch import dispatch_session

    dispatch_session(session_id)


def _dispatch_scoring(job_id: int) -> None:
    from training_worker.dispatch import dispatch_scoring

    dispatch_scoring(job_id)


KINDS = (
    Kind(TRAIN_TASK, _queued_sessions, _session_queued, _dispatch_session),
    Kind(SCORE_TASK, _queued_scoring_jobs, _scoring_job_queued, _dispatch_scoring),
)


# ------------------------------------------------------------------------------------ the pass


def redispatch_lost_work(older_than_seconds: float) -> list[tuple[str, int]]:
    """Dispatch again the queued rows (older than the threshold) that no stage holds a message for.

    Returns what was dispatched, as ``(task name, id)``. Distributed mode only.
    """
    if not settings.DISTRIBUTED:
        return []
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    waiting = {kind.task: set(kind.queued(cutoff)) for kind in KINDS}
    if not any(waiting.values()):
        return []  # the usual case: one query, nothing else
    import redis

    with redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5) as client:
        return _redispatch(client, waiting, older_than_seconds)


def _redispatch(
    client: Any, waiting: dict[str, set[int]], older_than_seconds: float
) -> list[tuple[str, int]]:
    held = messages_in_queues(client)  # stage 1
    missing = _missing(waiting, held)
    if not missing:
        return []
    unacked = unacked_messages(client)  # stage 2, with the time each was delivered
    held |= {key for key, delivered in unacked.items() if time.time() - delivered < older_than_seconds}
    missing = _missing(waiting, held)
    if not missing:
        return []
    workers = messages_held_by_workers()  # stages 2 and 3, as the workers tell
    if workers is None:  # no answer to count on: a prefetched message may still be someone's
        held |= set(unacked)
    else:
        held |= workers
    sent = []
    declared = False
    for kind in KINDS:
        for row_id in sorted(missing.get(kind.task, ())):
            if (kind.task, row_id) in held or not kind.still_queued(row_id):  # stage 4: claimed
                continue
            lease = LEASE_KEY.format(task=kind.task, id=row_id)
            if not client.set(lease, uuid.uuid4().hex, nx=True, ex=max(1, int(older_than_seconds))):
                continue  # another web process (or an earlier pass) just sent it
            if not declared:
                declare_queues()
                declared = True
            kind.dispatch(row_id)
            sent.append((kind.task, row_id))
    if sent:
        log.warning("dispatched again, their broker messages being lost: %s", sent)
    return sent


def _missing(waiting: dict[str, set[int]], held: set[tuple[str, int]]) -> dict[str, set[int]]:
    left = {task: {i for i in ids if (task, i) not in held} for task, ids in waiting.items()}
    return {task: ids for task, ids in left.items() if ids}


# ------------------------------------------------------------------------------------ the stages


def queue_names() -> list[str]:
    from training_worker.gpus import CPU_QUEUE, GPU_QUEUE

    return [CPU_QUEUE, GPU_QUEUE]


def messages_in_queues(client: Any) -> set[tuple[str, int]]:
    """``(task, id)`` of every message waiting in the training queues' Redis lists."""
    held: set[tuple[str, int]] = set()
    for queue in queue_names():
        for key in [queue, *(f"{queue}{PRIORITY_SEPARATOR}{p}" for p in range(1, 10))]:
            for raw in client.lrange(key, 0, -1):
                if (found := task_of_message(raw)) is not None:
                    held.add(found)
    return held


def unacked_messages(client: Any) -> dict[tuple[str, int], float]:
    """``(task, id)`` → when it was delivered, for messages delivered to a worker and not acked."""
    delivered = {
        (tag.decode() if isinstance(tag, bytes) else str(tag)): score
        for tag, score in client.zrange("unacked_index", 0, -1, withscores=True)
    }
    found: dict[tuple[str, int], float] = {}
    for tag, raw in client.hgetall("unacked").items():
        try:
            message = json.loads(raw)[0]  # [message, exchange, routing_key]
        except (ValueError, TypeError, IndexError, KeyError):
            continue
        key = task_of_message(message)
        if key is not None:
            tag_text = tag.decode() if isinstance(tag, bytes) else str(tag)
            found[key] = min(found.get(key, float("inf")), delivered.get(tag_text, 0.0))
    return found


def messages_held_by_workers() -> set[tuple[str, int]] | None:
    """What the live workers say they hold (reserved: prefetched; active: started); None when
    asking failed. No worker answering is an answer: they hold nothing."""
    from webapp.celery import app

    held: set[tuple[str, int]] = set()
    try:
        inspect = app.control.inspect(timeout=INSPECT_TIMEOUT_SECONDS)
        for replies in (inspect.reserved(), inspect.active()):
            for requests in (replies or {}).values():
                for request in requests or ():
                    key = _key(request.get("name") or request.get("type"), request.get("args"))
                    if key is not None:
                        held.add(key)
    except Exception:
        log.warning("could not ask the workers what they hold", exc_info=True)
        return None
    return held


def declare_queues() -> None:
    """Bind the training queues again (a flushed Redis lost kombu's binding tables)."""
    from webapp.celery import app

    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for name in queue_names():
            app.amqp.queues[name](channel).declare()  # Celery's own definition (exchange, key)


# ------------------------------------------------------------------------------------ messages


def task_of_message(message: Any) -> tuple[str, int] | None:
    """``(task name, first argument)`` of a kombu Redis message (bytes/str of JSON, or a dict)."""
    try:
        if isinstance(message, bytes | str):
            message = json.loads(message)
        headers = message.get("headers") or {}
        body = message.get("body")
        if (message.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        payload = json.loads(body) if isinstance(body, bytes | str) else body
        args = payload[0] if isinstance(payload, list) else payload.get("args")  # protocol 2 / 1
        return _key(headers.get("task") or (payload.get("task") if isinstance(payload, dict) else None), args)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError):
        return None


def _key(task: Any, args: Any) -> tuple[str, int] | None:
    if task not in (TRAIN_TASK, SCORE_TASK) or not isinstance(args, Iterable):
        return None
    args = list(args)
    if len(args) != 1 or isinstance(args[0], bool):
        return None
    try:
        return str(task), int(args[0])
    except (TypeError, ValueError):
        return None
