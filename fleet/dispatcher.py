"""Carrying setpoints out on many devices at once, with read-back, retry with backoff, and a verdict per command.

Async and free of Django: `execute(jobs)` runs every job on one event loop, at most `concurrency` at a time. A
job sends its setpoint, waits `settle_s`, reads the device back `confirmations` times; a reading that does not
follow the setpoint (or no answer) is retried after `backoff_s * 2**attempt`, up to `retries` times. Then the
verdict: ok, faulted (its reads answered but never showed the setpoint: acknowledged without a change,
flapping) or unreachable (no read answered; pyasic reports a refused connection as a command not acknowledged).

Worker processes: speaking to a miner costs CPU in pyasic (building and parsing each RPC exchange, a few ms per
command with its read-back), so one event loop is bound to one core. A large round (or poll) is split into
shards by device id, `Tuning.workers` at most and no shard under `Tuning.min_shard` devices; each shard runs on
its own worker process (`fleet.workers`, one per shard index, kept for the life of the dispatcher), so a device
always meets the same process and its pyasic session. A small round runs in this process.
"""

from __future__ import annotations

import asyncio
import atexit
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from .drivers import DriverError, DriverSession, Endpoint, Reading, Setpoint, prepare
from .workers import Worker, WorkerDied


@dataclass(frozen=True)
class Job:
    endpoint: Endpoint
    setpoint: Setpoint
    nominal_w: float
    action: str


@dataclass
class Result:
    job: Job
    sent: bool = False
    acknowledged: bool | None = None
    reading: Reading | None = None
    attempts: int = 0
    outcome: str = "unreachable"
    error: str = ""
    answered: bool = False


@dataclass(frozen=True)
class Tuning:
    timeout_s: float = 5.0
    retries: int = 2
    backoff_s: float = 0.5
    settle_s: float = 0.2
    confirmations: int = 2
    concurrency: int = 500  # devices spoken to at once, per process
    workers: int = 1  # processes a large round is split over
    min_shard: int = 500  # devices per worker process at least


async def _read_back(session: DriverSession, job: Job, result: Result, tuning: Tuning) -> bool:
    for n in range(tuning.confirmations):
        if n:
            await asyncio.sleep(tuning.settle_s)
        reading = await session.read(job.endpoint, nominal_w=job.nominal_w)
        result.answered = True
        result.reading = reading
        if not reading.follows(job.setpoint, nominal_w=job.nominal_w):
            return False
    return True


async def _run(session: DriverSession, job: Job, tuning: Tuning, gate: asyncio.Semaphore) -> Result:
    result = Result(job=job)
    async with gate:
        for attempt in range(tuning.retries + 1):
            if attempt:
                await asyncio.sleep(tuning.backoff_s * 2 ** (attempt - 1))
            result.attempts = attempt + 1
            try:
                result.acknowledged = await session.send(job.endpoint, job.setpoint)
                result.sent = True
                await asyncio.sleep(tuning.settle_s)
                if await _read_back(session, job, result, tuning):
                    result.outcome, result.error = "ok", ""
                    return result
                result.error = "read back differs from the setpoint"
                session.forget(job.endpoint)  # the retry opens a new session and sends every part again
            except DriverError as exc:
                result.error = str(exc)[:300]
    result.outcome = "faulted" if result.answered else "unreachable"
    return result


T = TypeVar("T")
R = TypeVar("R")
_workers: list[Worker] = []


def shards(items: Sequence[T], key: Callable[[T], int], tuning: Tuning) -> list[list[T]]:
    """`items` split by `key(item) % n` into n shards: n = workers at most, min_shard items per shard at least."""
    n = max(1, min(tuning.workers, len(items) // max(tuning.min_shard, 1)))
    parts: list[list[T]] = [[] for _ in range(n)]
    for item in items:
        parts[key(item) % n].append(item)
    return parts


def _worker(index: int) -> Worker:
    """The worker process of shard `index`, started (or replaced, if it ended) as needed."""
    while len(_workers) <= index:
        _workers.append(Worker())
    if not _workers[index].alive():
        _workers[index].stop()
        _workers[index] = Worker()
    return _workers[index]


@atexit.register
def shutdown_workers() -> None:
    """Stop the worker processes (they are started again when needed)."""
    while _workers:
        _workers.pop().stop()


def _spread(run: Callable[[list[T], Tuning], list[R]], parts: list[list[T]], tuning: Tuning) -> list[R]:
    """`run` on each part: here when there is one part, else part i on worker process i; results in part order.
    A worker that dies meanwhile (killed, out of memory) is replaced next time, and its part is run here."""
    if len(parts) == 1:
        return run(parts[0], tuning)
    started = []
    for i, part in enumerate(parts):
        try:
            _worker(i).send(run, part, tuning)
            started.append(True)
        except WorkerDied:
            started.append(False)
    results: list[R] = []
    failure: Exception | None = None
    for i, part in enumerate(parts):  # every started worker is read, even after a failure: no stale answer waits
        try:
            if not started[i]:
                raise WorkerDied(f"worker {i} did not start")
            results.extend(_workers[i].receive())
        except WorkerDied:
            results.extend(run(part, tuning))
        except Exception as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    return results


def _execute_here(jobs: list[Job], tuning: Tuning) -> list[Result]:
    prepare({job.endpoint.driver for job in jobs})
    return asyncio.run(execute(jobs, tuning))


def run_jobs(jobs: list[Job], tuning: Tuning) -> list[Result]:
    """`execute` on fresh event loops, split over worker processes when large (results in no particular order)."""
    return _spread(_execute_here, shards(jobs, lambda job: job.endpoint.device_id, tuning), tuning)


# A site's revenue meter to read: (site id, address, port, secret).
MeterTarget = tuple[int, str, int, str | None]


def _read_here(endpoints: list[tuple[Endpoint, float]], tuning: Tuning) -> list[Reading | DriverError]:
    prepare({endpoint.driver for endpoint, _ in endpoints})
    return asyncio.run(read_all(endpoints, [], tuning))[0]


def poll(
    endpoints: list[tuple[Endpoint, float]], meters: list[MeterTarget], tuning: Tuning
) -> tuple[list[Reading | DriverError], list[float | DriverError]]:
    """Every device and meter read once (devices over worker processes when many); results in input order."""
    parts = shards(list(enumerate(endpoints)), lambda item: item[1][0].device_id, tuning)
    flat = _spread(_read_here, [[endpoint for _i, endpoint in part] for part in parts], tuning)
    by_index = dict(zip((i for part in parts for i, _endpoint in part), flat, strict=True))
    meter_reads = asyncio.run(read_all([], meters, tuning))[1] if meters else []
    return [by_index[i] for i in range(len(endpoints))], meter_reads


async def execute(jobs: list[Job], tuning: Tuning) -> list[Result]:
    gate = asyncio.Semaphore(tuning.concurrency)
    async with DriverSession(timeout_s=tuning.timeout_s) as session:
        return list(await asyncio.gather(*(_run(session, job, tuning, gate) for job in jobs)))


async def read_all(
    endpoints: list[tuple[Endpoint, float]], meters: list[MeterTarget], tuning: Tuning
) -> tuple[list[Reading | DriverError], list[float | DriverError]]:
    """Poll every device and meter once; an error is returned in place of its reading."""
    gate = asyncio.Semaphore(tuning.concurrency)
    async with DriverSession(timeout_s=tuning.timeout_s) as session:

        async def one(endpoint: Endpoint, nominal_w: float):
            async with gate:
                try:
                    return await session.read(endpoint, nominal_w=nominal_w)
                except DriverError as exc:
                    return exc

        async def meter(address: str, port: int, secret: str | None):
            try:
                return await session.read_meter(address, port, secret)
            except DriverError as exc:
                return exc

        readings = await asyncio.gather(*(one(e, w) for e, w in endpoints))
        meter_reads = await asyncio.gather(*(meter(a, p, s) for _site, a, p, s in meters))
    return list(readings), list(meter_reads)
