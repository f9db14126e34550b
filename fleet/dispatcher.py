"""Carrying setpoints out on many devices at once, with read-back, retry with backoff, and a verdict per command.

Async and free of Django: `execute(jobs)` runs every job on one event loop, at most `concurrency` at a time. A
job sends its setpoint, waits `settle_s`, reads the device back `confirmations` times; a reading that does not
follow the setpoint (or no answer) is retried after `backoff_s * 2**attempt`, up to `retries` times. Then the
verdict: ok, faulted (its reads answered but never showed the setpoint: acknowledged without a change,
flapping) or unreachable (no read answered; pyasic reports a refused connection as a command not acknowledged).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .drivers import DriverError, DriverSession, Endpoint, Reading, Setpoint, prepare


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
    concurrency: int = 500


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


def run_jobs(jobs: list[Job], tuning: Tuning) -> list[Result]:
    """`execute` on a fresh event loop, drivers imported first."""
    prepare({job.endpoint.driver for job in jobs})
    return asyncio.run(execute(jobs, tuning))


def poll(
    endpoints: list[tuple[Endpoint, float]], meters: list[tuple[str, str, int, str | None]], tuning: Tuning
) -> tuple[list[Reading | DriverError], list[float | DriverError]]:
    """`read_all` on a fresh event loop, drivers imported first."""
    prepare({endpoint.driver for endpoint, _ in endpoints})
    return asyncio.run(read_all(endpoints, meters, tuning))


async def execute(jobs: list[Job], tuning: Tuning) -> list[Result]:
    gate = asyncio.Semaphore(tuning.concurrency)
    async with DriverSession(timeout_s=tuning.timeout_s) as session:
        return list(await asyncio.gather(*(_run(session, job, tuning, gate) for job in jobs)))


async def read_all(
    endpoints: list[tuple[Endpoint, float]], meters: list[tuple[str, str, int, str | None]], tuning: Tuning
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
