"""Two sessions training at once on two workers, against one session alone: per-epoch time of each,
the ratio concurrent ÷ alone, and whether they interfere (a session failing, both landing on one
worker, or numbers different from the solo run of the same design and seed).

- distributed (REDIS_URL/DATABASE_URL): uvicorn + two `manage.py trainingworker` processes with
  their own `-n` names, one task slot each;
- embedded: one process with EMBEDDED_WORKERS=2 (two supervisor threads, two runners).

Each mode trains the same task (a generated dataset, ``--epochs`` epochs, the split's and Keras'
seed 1337) once to warm up, then alone, then twice at once, ``--pause`` seconds apart so warm
runners are back. The concurrent figure is the median of the epochs that ran wholly while the other
session was training (from the epoch events' ``sent_at`` and ``seconds``): the two need not start
together (embedded mode keeps one warm runner per process, so the second session imports TensorFlow
first). The first epoch (graph tracing) is left out of the medians. On a machine with fewer cores
than two runners can use, a ratio towards 2× is the CPUs being shared, not interference.

    .venv/bin/python -m bench.two_workers [--epochs 30] [--rows 20000] [--mode both]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import time

from bench.load import classification_task, distributed_urls, epoch_events, load_line, studio
from tests.live import Client


def median_epoch(state: dict) -> float:
    seconds = [row["seconds"] for row in state["metrics"]]
    return statistics.median(seconds[1:] or seconds)


def largest_difference(solo: dict, other: dict) -> float:
    """The largest absolute difference between two sessions' epoch metrics (inf: different shapes)."""
    if len(solo["metrics"]) != len(other["metrics"]):
        return math.inf
    worst = 0.0
    for mine, theirs in zip(solo["metrics"], other["metrics"], strict=True):
        if set(mine["values"]) != set(theirs["values"]):
            return math.inf
        for name, value in mine["values"].items():
            if value is None or theirs["values"][name] is None:
                if value is not theirs["values"][name]:
                    return math.inf
                continue
            worst = max(worst, abs(value - theirs["values"][name]))
    return worst


def spans(events: list[dict]) -> list[tuple[float, float]]:
    """Each epoch's (start, end) in Unix seconds: published at ``sent_at``, ``seconds`` long."""
    return [(e["sent_at"] - e["seconds"], e["sent_at"]) for e in events]


def concurrent_epochs(mine: list[dict], other: list[dict]) -> list[float]:
    """The durations of ``mine``'s epochs (the first, tracing, left out) run wholly while ``other``
    was between the start of its first epoch and the end of its last."""
    if not other:
        return []
    start, end = spans(other)[0][0], spans(other)[-1][1]
    return [
        e["seconds"] for e, (a, b) in zip(mine[1:], spans(mine)[1:], strict=True) if start <= a and b <= end
    ]


async def train_watched(client: Client, mltask: int, count: int) -> list[tuple[dict, list[dict]]]:
    """Train ``count`` sessions at once; each one's final state and live epoch events."""
    sessions = [client.train(mltask) for _ in range(count)]
    events = await asyncio.gather(*(epoch_events(client, session) for session in sessions))
    states = [await asyncio.to_thread(client.wait, session, 300) for session in sessions]
    return list(zip(states, events, strict=True))


def measure(mode: str, args: argparse.Namespace) -> None:
    with studio(mode, workers=2) as running:
        client = Client(running.base)
        mltask = classification_task(client, args.rows, epochs=args.epochs, batch_size=args.batch_size)
        # A first session warms the database and the workers up; it is not measured.
        client.wait(client.train(mltask), timeout=900)
        time.sleep(args.pause)  # the warm runner(s) back, as after any session a while ago
        print(f"{mode}: before: {load_line()}")
        started = time.perf_counter()
        [(solo, _)] = asyncio.run(train_watched(client, mltask, 1))
        solo_wall = time.perf_counter() - started
        time.sleep(args.pause)
        started = time.perf_counter()
        together = asyncio.run(train_watched(client, mltask, 2))
        pair_wall = time.perf_counter() - started
        print(f"{mode}: after: {load_line()}")
    states = [solo] + [state for state, _ in together]
    failed = [s for s in states if s["status"] != "succeeded"]
    for state in failed:
        print(f"  session {state['id']} ended {state['status']}: {state['error']}")
    if failed:
        print(f"{mode}: INTERFERENCE: {len(failed)} session(s) did not succeed")
        return
    alone = median_epoch(solo)
    print(
        f"  alone: session {solo['id']} on {solo['worker']}: median epoch {alone:.3f} s, "
        f"{solo_wall:.1f} s Train → done"
    )
    differences, overlapped = [], []
    for index, (state, events) in enumerate(together):
        other = together[1 - index][1]
        both = concurrent_epochs(events, other)
        overlapped.extend(both)
        differences.append(largest_difference(solo, state))
        during = f"{statistics.median(both):.3f} s" if both else "none"
        late = ""
        if index and events and other:
            lag = events[0]["sent_at"] - other[0]["sent_at"]
            late = f"; its first epoch ended {lag:+.1f} s after the other's"
        print(
            f"  together: session {state['id']} on {state['worker']}: median epoch "
            f"{median_epoch(state):.3f} s, while the other trained {during} ({len(both)} epochs){late}; "
            f"largest metric difference from the solo run {differences[-1]:.3g}"
        )
    ratio = f"{statistics.median(overlapped) / alone:.2f}×" if overlapped else "n/a (they never overlapped)"
    workers = {state["worker"] for state, _ in together}
    identical = all(d == 0 for d in differences)
    print(
        f"{mode}: epoch while both train ÷ alone: {ratio}; the pair done in {pair_wall:.1f} s vs "
        f"{2 * solo_wall:.1f} s for two in a row; {len(workers)} distinct worker name(s); both "
        f"succeeded; metrics identical to the solo run: {'yes' if identical else 'NO'} "
        f"({os.cpu_count()} CPUs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the generated dataset")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--pause", type=float, default=15.0, help="seconds before each measured Train")
    parser.add_argument(
        "--mode",
        choices=("both", "embedded", "distributed"),
        default="both",
        help="both: distributed too when REDIS_URL and DATABASE_URL are set",
    )
    args = parser.parse_args()
    if args.mode in ("both", "distributed"):
        if distributed_urls():
            measure("distributed", args)
        elif args.mode == "distributed":
            raise SystemExit("distributed mode needs REDIS_URL and DATABASE_URL")
        else:
            print("distributed: skipped (set REDIS_URL and DATABASE_URL)")
    if args.mode in ("both", "embedded"):
        measure("embedded", args)


if __name__ == "__main__":
    main()
