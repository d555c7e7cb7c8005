"""50 concurrent API clients (``--clients``) on a running session's status, `GET /api/sessions/{id}/`,
against the same load on `GET /api/health/` (anonymous: no token lookup, a `SELECT 1`, and a Redis
ping in distributed mode): the server's floor, measured in the same run.

Each client keeps one HTTP/1.1 connection (a minimal asyncio client, so the load generator costs
little CPU next to the server on this small machine) and runs in two regimes, ``--seconds`` each:

- polling: each client asks every ``--interval`` seconds (1 s: ~50 requests/s offered), starting at
  a random offset. This is what the goal (p95 ≤ 50 ms) is read on: clients watching a status.
- saturated: each client asks again as soon as it has its answer, the most the server can do;
  there latency ≈ clients ÷ throughput (Little's law), whatever the goal.

The session trains on a generated dataset all along (it competes for the CPUs, as it would); its
stored epochs, hence the response size, grow during the run and are printed.

    .venv/bin/python -m bench.api_status_load [--clients 50] [--seconds 20] [--distributed]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from urllib.parse import urlparse

from bench.load import classification_task, load_line, percentiles, studio
from tests.live import FINAL, Client

GOAL_P95_MS = 50


class HttpConnection:
    """One keep-alive connection: GET only, Content-Length or chunked bodies."""

    def __init__(self, base: str, headers: dict[str, str]):
        parsed = urlparse(base)
        self.host, self.port = parsed.hostname, parsed.port
        self.headers = "".join(f"{k}: {v}\r\n" for k, v in {"Host": parsed.netloc, **headers}.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, int]:
        """(status, body bytes)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\n{self.headers}\r\n".encode())
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
        if "content-length" in fields:
            body = len(await self.reader.readexactly(int(fields["content-length"])))
        else:  # chunked
            body = 0
            while size := int((await self.reader.readline()).strip(), 16):
                body += len(await self.reader.readexactly(size + 2)) - 2
            await self.reader.readline()
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def client_loop(base, headers, path, interval, until, latencies, failures, sizes) -> None:
    connection = HttpConnection(base, headers)
    next_at = time.perf_counter() + (random.uniform(0, interval) if interval else 0)
    try:
        while True:
            if interval:
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                next_at += interval
            if time.perf_counter() >= until:
                return
            started = time.perf_counter()
            try:
                status, size = await connection.get(path)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                failures.append(type(exc).__name__)
                await connection.close()
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            sizes.append(size)
            if status != 200:
                failures.append(str(status))
    finally:
        await connection.close()


async def load(base: str, headers: dict, path: str, clients: int, seconds: float, interval: float) -> dict:
    latencies: list[float] = []
    failures: list[str] = []
    sizes: list[int] = []
    until = time.perf_counter() + seconds
    args = (base, headers, path, interval, until, latencies, failures, sizes)
    started = time.perf_counter()
    await asyncio.gather(*(client_loop(*args) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "per_second": len(latencies) / elapsed,
        "ms": percentiles(latencies, 50, 95, 99),
        "failures": failures,
        "bytes": (min(sizes), max(sizes)) if sizes else (0, 0),
    }


def report(name: str, result: dict, goal: bool) -> None:
    p50, p95, p99 = result["ms"]
    verdict = ""
    if goal:
        verdict = f"  [goal p95 ≤ {GOAL_P95_MS} ms: {'met' if p95 <= GOAL_P95_MS else 'MISSED'}]"
    failures = (
        f", {len(result['failures'])} failed ({sorted(set(result['failures']))})"
        if result["failures"]
        else ""
    )
    low, high = result["bytes"]
    print(
        f"  {name:<34} {result['per_second']:6.0f} req/s  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  "
        f"p99 {p99:6.1f} ms  ({result['requests']} requests, {low}–{high} bytes{failures}){verdict}"
    )


def measure(mode: str, args: argparse.Namespace) -> None:
    with studio(mode) as running:
        client = Client(running.base)
        mltask = classification_task(client, args.rows, epochs=100_000, batch_size=args.batch_size)
        session = client.train(mltask)
        state = client.wait_for_epochs(session, args.warm_epochs, timeout=600)
        if state["status"] in FINAL:
            raise SystemExit(f"session ended {state['status']}: {state['error']}")
        print(f"{mode}: {args.clients} clients, {args.seconds:.0f} s per line; session {session} running")
        print(f"  before: {len(state['metrics'])} epochs stored; {load_line()}")
        token = {"Authorization": f"Token {client.token}"}
        regimes = [("polling", args.interval), ("saturated", 0.0)]
        for regime, interval in regimes:
            label = f"every {interval:g} s" if interval else "back to back"
            for name, path, headers, goal in (
                ("GET /api/health/", "/api/health/", {}, False),
                (f"GET /api/sessions/{session}/", f"/api/sessions/{session}/", token, regime == "polling"),
            ):
                result = asyncio.run(load(running.base, headers, path, args.clients, args.seconds, interval))
                report(f"{regime} ({label}) {name}", result, goal)
        state = client.call("GET", f"/api/sessions/{session}/")
        print(f"  after: {len(state['metrics'])} epochs stored, session {state['status']}; {load_line()}")
        client.call("POST", f"/api/sessions/{session}/abort/")
        client.wait(session, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0, help="per endpoint and regime")
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between a polling client's requests"
    )
    parser.add_argument("--rows", type=int, default=50_000, help="rows of the session's generated dataset")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warm-epochs", type=int, default=3, help="epochs stored before the load starts")
    parser.add_argument("--distributed", action="store_true", help="Redis mode (REDIS_URL, DATABASE_URL)")
    args = parser.parse_args()
    measure("distributed" if args.distributed else "embedded", args)


if __name__ == "__main__":
    main()
