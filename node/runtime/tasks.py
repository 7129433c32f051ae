"""Supervised background loops, shared by every role (node, federation, match workers).

A long-running loop that dies of an unexpected error used to die silently: the expiry
sweeper stopped sweeping and the next ``close()`` re-raised its error instead of closing the
store. As synapse's ``run_as_background_process`` does, every such loop runs here instead:
a failure is logged with its traceback, counted in
``hashmesh_background_task_failures_total{task}``, shown in ``/v1/status``
(``background_tasks``), and the loop is started again after a pause that doubles up to
``MAX_RESTART_SECONDS`` (and starts from ``FIRST_RESTART_SECONDS`` again once a run lasted
``STABLE_SECONDS``). Stopping a task never raises what the loop raised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter

log = logging.getLogger("hashmesh.tasks")

FIRST_RESTART_SECONDS = 0.5
MAX_RESTART_SECONDS = 60.0
STABLE_SECONDS = 300.0
RECANCEL_SECONDS = 1.0


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (if any) and wait until it has finished unwinding; whatever it
    raised while unwinding is logged, not re-raised (a caller that is closing must go on).

    The cancellation is delivered again every ``RECANCEL_SECONDS`` while the task runs on:
    a library that turns the ``CancelledError`` into an error of its own (aiohttp's connect,
    seen in the tests) lets a loop that catches errors go on for ever otherwise.
    """
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RECANCEL_SECONDS)
    try:
        task.result()
    except asyncio.CancelledError:
        pass
    except Exception:
        log.exception("background task %s failed while stopping", task.get_name())


def being_cancelled() -> bool:
    """Whether the current task has been asked to stop: a loop that catches ``Exception``
    checks this, as the request may have surfaced as another error."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


@dataclass
class TaskState:
    """What ``/v1/status`` shows of one supervised loop."""

    name: str
    failures: int = 0
    last_error: str | None = None
    last_failure_at: float | None = None
    running: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"running": self.running, "failures": self.failures,
                "last_error": self.last_error, "last_failure_at": self.last_failure_at}


@dataclass
class Supervisor:
    """The supervised loops of one process. ``failures`` is the counter failures go to."""

    failures: Counter | None = None
    first_restart: float = FIRST_RESTART_SECONDS
    max_restart: float = MAX_RESTART_SECONDS
    states: dict[str, TaskState] = field(default_factory=dict)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def start(self, name: str, loop: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run ``loop()`` as task ``name`` until stopped, starting it again whenever it fails.

        A loop that returns is done (not restarted). A name already running is replaced.
        """
        old = self.tasks.pop(name, None)
        if old is not None and not old.done():
            old.cancel()
        state = self.states.setdefault(name, TaskState(name))
        task = asyncio.create_task(self._run(state, loop), name=name)
        self.tasks[name] = task
        return task

    async def _run(self, state: TaskState, loop: Callable[[], Awaitable[None]]) -> None:
        pause = self.first_restart
        while True:
            started = time.monotonic()
            state.running = True
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if being_cancelled():
                    raise asyncio.CancelledError from exc
                self._failed(state, exc)
            finally:
                state.running = False
            if time.monotonic() - started > STABLE_SECONDS:
                pause = self.first_restart
            log.error("background task %s failed (%d so far); starting it again in %.1f s",
                      state.name, state.failures, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, self.max_restart)

    def _failed(self, state: TaskState, exc: Exception) -> None:
        state.failures += 1
        state.last_error = f"{type(exc).__name__}: {exc}"
        state.last_failure_at = time.time()
        log.error("background task %s died", state.name, exc_info=exc)
        if self.failures is not None:
            self.failures.labels(state.name).inc()

    def release(self, name: str) -> asyncio.Task[None] | None:
        """Stop supervising ``name`` and hand its task over (still running) to the caller,
        who must stop it: a peer link being replaced keeps finishing its commit meanwhile."""
        return self.tasks.pop(name, None)

    async def stop(self, name: str) -> None:
        await cancel_and_wait(self.tasks.pop(name, None))

    async def stop_all(self) -> None:
        for name in list(self.tasks):
            await self.stop(name)

    def status(self) -> dict[str, Any]:
        return {name: state.to_json() for name, state in sorted(self.states.items())}


async def every(seconds: float, step: Callable[[], Awaitable[object] | object]) -> None:
    """Run ``step`` (sync or async) every ``seconds``, forever; an error ends the loop (and
    the supervisor logs, counts and restarts it)."""
    while True:
        await asyncio.sleep(seconds)
        result = step()
        if asyncio.iscoroutine(result):
            await result
