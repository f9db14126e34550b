"""The dispatcher's worker processes: plain child processes (`python -m fleet.workers`) that run one pickled
call at a time, read from their standard input, and write its pickled result (or exception) to their output.

Not multiprocessing: it refuses to start children from a daemonic process, which is what a Celery prefork
worker is. A worker ends when its input closes (the dispatcher stopped it, or died); what it prints goes to
standard error, so its output carries only replies. No Django here.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent


class WorkerDied(Exception):
    """The worker process ended (killed, out of memory) before it answered."""


class Worker:
    def __init__(self) -> None:
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fleet.workers"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
            cwd=ROOT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, fn: Callable, *args: Any) -> None:
        """Start `fn(*args)` on the worker (`fn` a module-level function); `receive` gives its result."""
        assert self.process.stdin is not None
        try:
            pickle.dump((fn, args), self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.process.stdin.flush()
        except OSError as exc:
            raise WorkerDied(f"worker {self.pid}: {exc}") from exc

    def receive(self) -> Any:
        """The result of the call sent last; its exception is raised here."""
        assert self.process.stdout is not None
        try:
            ok, value = pickle.load(self.process.stdout)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            raise WorkerDied(f"worker {self.pid} ended without an answer") from exc
        if not ok:
            raise value
        return value

    def stop(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def serve(calls: IO[bytes], replies: IO[bytes]) -> None:
    """Answer calls until the input closes."""
    while True:
        try:
            fn, args = pickle.load(calls)
        except EOFError:
            return
        try:
            reply: tuple[bool, Any] = (True, fn(*args))
        except Exception as exc:  # handed back to the caller, as if the call had run there
            reply = (False, exc)
        try:
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an exception that does not pickle
            data = pickle.dumps((False, RuntimeError(repr(reply[1]))), protocol=pickle.HIGHEST_PROTOCOL)
            del exc
        replies.write(data)
        replies.flush()


if __name__ == "__main__":
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever a library prints goes to standard error
    sys.stdout = sys.stderr
    serve(sys.stdin.buffer, replies)
