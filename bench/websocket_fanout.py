"""N websocket clients (200 by default) watching one training session: how late each `epoch` event
reaches each of them, and how many never do.

The clients (one asyncio process, the `websockets` library, each authenticated with the API token
as scripts are) connect while the session is still queued behind a "blocker" session that holds the
only training slot; once all have their snapshot the blocker is aborted and the session trains
``--epochs`` short epochs. Latency = arrival at the client − the event's ``sent_at`` (stamped by
analyses.live.publish right after the epoch row is stored), so it covers the channel layer, the
fan-out to every consumer and the websocket write. Lost = epochs × clients − epochs received (live,
or in a client's snapshot had it connected late). Both clocks are this machine's.

Embedded mode (in-memory channel layer) by default; ``--distributed`` runs uvicorn + a Celery worker
on REDIS_URL/DATABASE_URL (channels_redis). Goal: p95 ≤ 250 ms, 0 lost.

    .venv/bin/python -m bench.websocket_fanout [--clients 200] [--epochs 40] [--distributed]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field

from bench.load import classification_task, load_line, percentiles, studio
from tests.live import FINAL, Client

GOAL_P95_MS = 250


@dataclass
class Watcher:
    snapshot_epochs: set[int] = field(default_factory=set)
    arrivals: dict[int, float] = field(default_factory=dict)  # epoch → arrival − sent_at (s)
    duplicates: int = 0
    messages: int = 0
    done: bool = False
    error: str | None = None


async def watch(
    url: str, headers: dict, origin: str, result: Watcher, connected: asyncio.Queue, compression: str | None
) -> None:
    import websockets

    snapshot = None
    try:
        async with websockets.connect(
            url,
            additional_headers=headers,
            origin=origin,
            open_timeout=120,
            max_queue=None,
            compression=compression,
        ) as ws:
            snapshot = json.loads(await ws.recv())
            result.snapshot_epochs = {row["epoch"] for row in snapshot.get("metrics", [])}
            await connected.put(snapshot["status"])
            async for raw in ws:
                arrived = time.time()
                message = json.loads(raw)
                result.messages += 1
                if message["type"] == "epoch":
                    if message["epoch"] in result.arrivals:
                        result.duplicates += 1
                    result.arrivals[message["epoch"]] = arrived - message["sent_at"]
                elif message["type"] == "done":
                    result.done = True
                    return
    except Exception as exc:  # reported, counted as lost epochs
        result.error = f"{type(exc).__name__}: {exc}"
        if snapshot is None:
            await connected.put(None)


async def run_clients(
    client: Client, session: int, blocker: int, clients: int, timeout: float, compression: str | None
) -> list[Watcher]:
    url = client.base.replace("http", "ws", 1) + f"/ws/sessions/{session}/"
    headers = {"Authorization": f"Token {client.token}"}
    watchers = [Watcher() for _ in range(clients)]
    connected: asyncio.Queue = asyncio.Queue()
    started = time.perf_counter()
    tasks = [
        asyncio.create_task(watch(url, headers, client.base, w, connected, compression)) for w in watchers
    ]
    statuses = [await asyncio.wait_for(connected.get(), timeout=300) for _ in watchers]
    print(
        f"  {statuses.count('queued')}/{clients} clients connected in {time.perf_counter() - started:.1f} s "
        f"while the session was queued; failed: {statuses.count(None)}"
    )
    await asyncio.to_thread(client.call, "POST", f"/api/sessions/{blocker}/abort/")
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    for watcher, task in zip(watchers, tasks, strict=True):
        if task in pending and watcher.error is None:
            watcher.error = "no done event before the time limit"
    return watchers


def measure(mode: str, args: argparse.Namespace) -> dict:
    clients, epochs, batch_size = args.clients, args.epochs, args.batch_size
    compression = None if args.no_compression else "deflate"
    with studio(mode) as running:
        client = Client(running.base)
        mltask = classification_task(client, args.rows, epochs=100_000, batch_size=batch_size)
        blocker = client.train(mltask)  # holds the training slot while the watchers connect
        state = client.wait(blocker, timeout=300, until=("running", *FINAL))
        if state["status"] != "running":
            raise SystemExit(f"the blocker session ended {state['status']}: {state['error']}")
        client.patch(mltask, training={"epochs": epochs, "batch_size": batch_size})
        session = client.train(mltask)
        print(f"{mode}: session {session} queued behind session {blocker}; {load_line()}")
        watchers = asyncio.run(run_clients(client, session, blocker, clients, 60 + epochs * 30, compression))
        final = client.wait(session, timeout=120)
    if final["status"] != "succeeded":
        raise SystemExit(f"session ended {final['status']}: {final['error']}")
    stored = [row["epoch"] for row in final["metrics"]]
    latencies = [seconds * 1000 for w in watchers for seconds in w.arrivals.values()]
    received = sum(len(set(w.arrivals) | w.snapshot_epochs) for w in watchers)
    # Per epoch: the first client's latency (publish → first delivery) and how much later the last
    # client got it (the fan-out over every watcher, the clients' own process included).
    by_epoch = [[w.arrivals[e] * 1000 for w in watchers if e in w.arrivals] for e in stored]
    first = [min(times) for times in by_epoch if times]
    spread = [max(times) - min(times) for times in by_epoch if times]
    epoch_seconds = [row["seconds"] for row in final["metrics"]]
    return {
        "mode": mode if compression else f"{mode} (no compression)",
        "epochs": len(stored),
        "epoch_seconds": sorted(epoch_seconds)[len(epoch_seconds) // 2],
        "clients": clients,
        "expected": len(stored) * clients,
        "live": len(latencies),
        "via_snapshot": sum(len(w.snapshot_epochs - set(w.arrivals)) for w in watchers),
        "lost": len(stored) * clients - received,
        "duplicates": sum(w.duplicates for w in watchers),
        "errors": sorted({w.error for w in watchers if w.error}),
        "messages": sum(w.messages for w in watchers),
        "latency_ms": percentiles(latencies, 50, 95, 99, 100),
        "first_ms": percentiles(first, 50, 95),
        "spread_ms": percentiles(spread, 50, 95),
        "load": load_line(),
    }


def report(result: dict) -> None:
    p50, p95, p99, worst = result["latency_ms"]
    verdict = "met" if p95 <= GOAL_P95_MS and result["lost"] == 0 else "MISSED"
    print(
        f"{result['mode']}: {result['clients']} clients × {result['epochs']} epochs "
        f"(median epoch {result['epoch_seconds']:.2f} s): epoch-event latency p50 {p50:.0f} ms, "
        f"p95 {p95:.0f} ms, p99 {p99:.0f} ms, max {worst:.0f} ms; lost {result['lost']} of "
        f"{result['expected']} (live {result['live']}, via snapshot {result['via_snapshot']}, "
        f"duplicates {result['duplicates']}); {result['messages']} messages in all  "
        f"[goal p95 ≤ {GOAL_P95_MS} ms, 0 lost: {verdict}]"
    )
    (first50, first95), (spread50, spread95) = result["first_ms"], result["spread_ms"]
    print(
        f"  per epoch: first client {first50:.0f} ms (p95 {first95:.0f}), "
        f"last − first client {spread50:.0f} ms (p95 {spread95:.0f})"
    )
    for error in result["errors"]:
        print(f"  client error: {error}")
    print(f"  after: {result['load']}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the generated dataset")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--distributed", action="store_true", help="Redis mode (REDIS_URL, DATABASE_URL)")
    parser.add_argument(
        "--no-compression",
        action="store_true",
        help="clients that do not offer permessage-deflate (browsers always do)",
    )
    args = parser.parse_args()
    report(measure("distributed" if args.distributed else "embedded", args))


if __name__ == "__main__":
    main()
