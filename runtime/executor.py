"""Executes runs: claim, run the workflow on the event runtime, record every step, finish.

One Executor per process that executes runs (the API process in the embedded default, each
worker otherwise). It listens for cancel requests on the bus, renews the leases of the runs it
holds, and sweeps for runs whose executor died.

A lease is kept on this process's monotonic clock as well as in the database: it ends
`RunStore.usable_lease_seconds` after the start of the last claim or renewal that succeeded,
which is before the database's expiry (the database computed that later). When that moment
passes without a renewal (the database is unreachable, or this process was frozen), the run is
stopped as "lost lease" and nothing more is recorded for it; a sweeper resumes it once the
database's lease has expired. The database fences every write as well (`RunStore._fence`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from base.auth.principal import Principal
from base.events.bus import CONTROL_TOPIC
from base.models.runs import RunStatus
from nodes.services import Boxed, ServiceCall
from runtime.events import EventRuntime, RunScope, report_progress
from runtime.runner import RunWorkflow, domain_cause
from services.deps import ServiceDeps
from services.run_store import ClaimedRun, LeaseLost, RunStore, StepChange

log = logging.getLogger("knowledge_desk.runs")

PROGRESS_INTERVAL = 0.1  # seconds between recorded progress events of one step
RETRY_DELAYS = (0.05, 0.1, 0.2, 0.5)  # between attempts of a write that must be recorded


class _Lease:
    """Our lease on one run as this process sees it: a deadline on the monotonic clock."""

    def __init__(self, usable_seconds: float, started: float, on_lost: Callable[[], None]) -> None:
        self.usable_seconds = usable_seconds
        self.deadline = started + usable_seconds
        self.on_lost = on_lost
        self.lost = False

    def renewed(self, started: float) -> None:
        """A renewal that began at `started` (monotonic) succeeded."""
        self.deadline = started + self.usable_seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def lose(self) -> None:
        if not self.lost:
            self.lost = True
            self.on_lost()

    def check(self) -> None:
        """Raise LeaseLost unless we may still write for the run."""
        if self.lost or self.left() <= 0:
            self.lose()
            raise LeaseLost("the lease ran out before it was renewed")


def _raise_if_cancelled(what: str, error: Exception) -> None:
    """A failed write of a task being cancelled is its cancellation: raise that.

    SQLAlchemy's async session finishes its commit when the task is cancelled, and if that
    commit then fails (SQLite: "database is locked") it raises the failure instead of the
    cancellation. Retrying it, or dropping it and going on, kept a cancelled writer going: a
    test's teardown waited on it until its 300 s timeout."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError(f"cancelled while recording {what}") from error


async def _until_recorded(lease: _Lease, what: str, write: Callable[[], Awaitable[None]]) -> None:
    """Write, retrying failures while the lease lasts; LeaseLost once it does not. A
    cancellation is never retried, even when it surfaces as another error."""
    for attempt in itertools.count():
        lease.check()
        try:
            await write()
            return
        except LeaseLost:
            lease.lose()
            raise
        except Exception as exc:
            _raise_if_cancelled(what, exc)
            log.warning("could not record %s; retrying", what, exc_info=attempt == 0)
        delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
        await asyncio.sleep(max(0.0, min(delay, lease.left())))


UNSTORABLE_MESSAGE = "The step's output cannot be stored."


class UnstorableOutput(Exception):
    """A step returned a value that JSON cannot hold: a retry could not reuse it."""


def stored_output(output: Any) -> dict[str, Any]:
    """A step's output as JSON for the steps table (what a retry reuses). UnstorableOutput when
    JSON cannot hold it: a step must return JSON values (dicts, lists, strings, numbers, None)
    or pydantic models."""
    value = output["result"].value if isinstance(output, dict) and "result" in output else output
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise UnstorableOutput(f"{type(value).__name__} is not JSON: {exc}") from exc
    return {"value": value}


class Executor:
    def __init__(
        self,
        *,
        deps: ServiceDeps,
        runtime: EventRuntime,
        workflows: Mapping[str, RunWorkflow],
        store: RunStore,
        lease_seconds: float,
        capacity: int,
        stale_queued_seconds: float | None = None,
        spawn_limit: int | None = None,
    ) -> None:
        self.deps = deps
        self.runtime = runtime
        self.workflows = workflows  # by the name stored on each run
        self.store = store
        self.lease_seconds = lease_seconds
        self.capacity = capacity  # the sweeper takes over stale runs only within this
        # A run QUEUED this long is taken by the sweeper (its enqueue may have been lost).
        self.stale_queued_seconds = (
            max(30.0, 4 * lease_seconds) if stale_queued_seconds is None else stale_queued_seconds
        )
        # How a stale run found by the sweeper is resumed here (inline: the launcher).
        self.resume: Callable[[uuid.UUID], Awaitable[None]] = self.spawn
        # Where a run delivered while stopping goes instead (a worker: back onto the queue).
        self.handoff: Callable[[uuid.UUID], Awaitable[None]] | None = None
        self.stopping = False
        self._spawned: set[asyncio.Task[None]] = set()
        self._interrupting: set[uuid.UUID] = set()
        self._running: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._cancelling: set[uuid.UUID] = set()
        self._stopped: set[uuid.UUID] = set()  # runs whose task was cancelled once already
        self._background: list[asyncio.Task[None]] = []
        # Runs spawned here execute at most `spawn_limit` at once (RUN_INLINE_CONCURRENCY); the
        # others wait for a slot, still QUEUED, in the order they were spawned.
        self._slots = asyncio.Semaphore(spawn_limit) if spawn_limit else None
        self._waiting: set[uuid.UUID] = set()
        self._in_slot: set[uuid.UUID] = set()

    async def start(self, *, sweep: bool) -> None:
        self._background.append(asyncio.create_task(self._listen_for_cancel()))
        if sweep:
            self._background.append(asyncio.create_task(self._sweep_forever()))

    async def spawn(self, run_id: uuid.UUID) -> None:
        """Execute a run in the background of this process, when a slot is free. A run already
        waiting for a slot or executing here is not spawned twice."""
        if run_id in self._waiting or run_id in self._running:
            return
        self._waiting.add(run_id)
        task = asyncio.create_task(self._execute_in_slot(run_id))
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    async def _execute_in_slot(self, run_id: uuid.UUID) -> None:
        try:
            if self._slots is None:
                self._waiting.discard(run_id)
                await self.execute(run_id)
                return
            async with self._slots:
                self._waiting.discard(run_id)
                self._in_slot.add(run_id)
                await self.execute(run_id)
        finally:
            self._waiting.discard(run_id)
            self._in_slot.discard(run_id)

    @property
    def waiting(self) -> int:
        """Runs spawned here that wait for a slot."""
        return len(self._waiting)

    @property
    def in_slot(self) -> int:
        """Runs spawned here that hold a slot (claiming, executing or finishing)."""
        return len(self._in_slot)

    async def wait_spawned(self) -> None:
        """Wait until every run spawned here has ended, with its lease's heartbeat."""
        while self._spawned:
            await asyncio.gather(*self._spawned, return_exceptions=True)

    async def close(self) -> None:
        tasks = [*self._background, *self._running.values(), *self._spawned]
        for task in self._background:
            task.cancel()
        for run_id in list(self._running):
            self._stop(run_id)
        for task in self._spawned:
            task.cancel()  # stops a run waiting for a slot; one executing is stopped above
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    @property
    def running(self) -> set[uuid.UUID]:
        return set(self._running)

    async def interrupt_all(self) -> list[uuid.UUID]:
        """Stop every run in progress and release it for another executor (shutdown)."""
        tasks = dict(self._running)
        self._interrupting.update(tasks)
        for run_id in tasks:
            self._stop(run_id)
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        return list(tasks)

    async def wait_finished(self, *, seconds: float) -> None:
        """Wait up to `seconds` for the runs in progress to end by themselves."""
        tasks = list(self._running.values())
        if tasks:
            await asyncio.wait(tasks, timeout=seconds)

    async def execute(self, run_id: uuid.UUID) -> None:
        """Execute the run if it can be claimed; return when it has ended (or is not ours)."""
        if self.stopping and self.handoff is not None:
            await self.handoff(run_id)  # another worker starts it now, not after our grace
            return
        claiming = time.monotonic()
        claim = await self.store.claim(run_id)
        if claim is None:
            return
        lease = _Lease(
            self.store.usable_lease_seconds, claiming, functools.partial(self._lost, run_id)
        )
        task = asyncio.create_task(self._execute(claim, lease), name=f"run-{run_id}")
        self._running[run_id] = task
        heartbeat = asyncio.create_task(self._heartbeat(run_id, task, lease))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            # Our caller is shutting down: stop the run and leave it to its lease, so that
            # another executor resumes it. Once: a second cancel landing while a cancelled
            # statement's connection closes leaves aiosqlite waiting forever (ADR 0077).
            self._stop(run_id)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            raise
        finally:
            heartbeat.cancel()
            # Wait for it: a renewal it was making gives its database connection back now, not
            # after the engine has been disposed at shutdown (which would leak it).
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            self._running.pop(run_id, None)
            self._cancelling.discard(run_id)
            self._stopped.discard(run_id)

    async def _execute(self, claim: ClaimedRun, lease: _Lease) -> None:
        try:
            await self._execute_owned(claim, lease)
        except LeaseLost:
            lease.lose()
        except asyncio.CancelledError:
            if not lease.lost:
                raise
            # Stopped for a lost lease: nothing more is recorded; a sweeper resumes the run.

    async def _execute_owned(self, claim: ClaimedRun, lease: _Lease) -> None:
        spec = self.workflows[claim.workflow]
        steps = spec.kind.steps
        if claim.cancel_requested:
            await self._finish(claim, lease, RunStatus.CANCELLED, cancelled=True)
            return
        recorder = _StepRecorder(self.store, claim.id, set(steps), lease)
        deps = dataclasses.replace(
            self.deps.for_principal(Principal(user_id=claim.triggered_by_id)),
            progress=report_progress,
            run_state={},
        )
        call = ServiceCall(deps, kwargs=claim.params)
        inputs = {step: {"call": call} for step in steps}
        reuse = {
            step: {"result": Boxed(value=(stored or {}).get("value"))}
            for step, stored in claim.reused_outputs.items()
        }
        try:
            results = await self.runtime.execute_run(
                spec.workflow, inputs, RunScope(sink=recorder.offer, reuse=reuse)
            )
            await recorder.drain()
            values = {step: results[step]["result"].value for step in steps}
            summary = spec.kind.summarize(values) if spec.kind.summarize else None
            outputs = {step: stored_output(results[step]) for step in steps}
            await self._finish(
                claim, lease, RunStatus.SUCCEEDED, output_summary=summary, outputs=outputs
            )
        except asyncio.CancelledError:
            if lease.lost:
                recorder.abandon()
                raise
            await asyncio.shield(recorder.drain())
            if claim.id in self._interrupting:
                # This process is stopping: give the run back; the next sweep resumes it.
                await asyncio.shield(self.store.release(claim.id))
                return
            if claim.id not in self._cancelling:
                raise
            await asyncio.shield(self._finish(claim, lease, RunStatus.CANCELLED, cancelled=True))
        except LeaseLost:
            recorder.abandon()
            raise
        except TimeoutError:  # the runtime's limit for one execution of a run
            await recorder.drain()
            limit = self.runtime.run_timeout
            await self._finish(
                claim,
                lease,
                RunStatus.FAILED,
                error_code="RUN_TIMED_OUT",
                error_message=f"The run took longer than its limit ({limit} s).",
            )
        except Exception as exc:
            await recorder.drain()
            cause = domain_cause(exc)
            if cause is None:
                log.exception("run %s (%s) failed unexpectedly", claim.id, claim.workflow)
            await self._finish(
                claim,
                lease,
                RunStatus.FAILED,
                error_code=cause.code if cause else "INTERNAL",
                error_message=cause.message if cause else "The run failed unexpectedly.",
            )

    async def _finish(
        self,
        claim: ClaimedRun,
        lease: _Lease,
        status: RunStatus,
        *,
        cancelled: bool = False,
        output_summary: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        outputs: dict[str, Any] | None = None,
    ) -> None:
        if cancelled:
            error_code, error_message = "CANCELLED", "Cancelled by a user."

        async def finish() -> None:
            await self.store.finish(
                claim.id,
                status,
                output_summary=output_summary,
                error_code=error_code,
                error_message=error_message,
                outputs=outputs,
            )

        await _until_recorded(lease, f"the end of run {claim.id}", finish)

    def _stop(self, run_id: uuid.UUID) -> bool:
        """Cancel the run's task once, whatever asks (a user, a lost lease, shutdown)."""
        task = self._running.get(run_id)
        if task is None or task.done() or run_id in self._stopped:
            return False
        self._stopped.add(run_id)
        task.cancel()
        return True

    def cancel_local(self, run_id: uuid.UUID) -> bool:
        task = self._running.get(run_id)
        if task is None or task.done():
            return False
        if run_id not in self._stopped:
            self._cancelling.add(run_id)
        self._stop(run_id)
        return True

    def _lost(self, run_id: uuid.UUID) -> None:
        """The lease of a run we execute is lost: stop executing it (once)."""
        log.warning("lost the lease of run %s; stopping it", run_id)
        task = self._running.get(run_id)
        if task is not None and task is not asyncio.current_task():
            self._stop(run_id)

    async def _heartbeat(self, run_id: uuid.UUID, task: asyncio.Task[None], lease: _Lease) -> None:
        """Renew the lease every third of it; stop the run when it runs out unrenewed."""
        beat = max(self.lease_seconds / 3, 0.2)
        retry = max(self.lease_seconds / 15, 0.1)  # after a failed renewal
        wait = beat
        while not task.done():
            await asyncio.sleep(max(0.0, min(wait, lease.left())))
            if task.done() or lease.lost:
                return
            if lease.left() <= 0:
                lease.lose()
                return
            started = time.monotonic()
            try:
                async with asyncio.timeout(lease.left()):
                    ours, cancel = await self.store.renew(run_id)
            except Exception:  # the database is unreachable or slow: retry while the lease lasts
                log.warning("could not renew the lease of run %s", run_id, exc_info=wait is beat)
                wait = retry
                continue
            if not ours:
                lease.lose()
                return
            lease.renewed(started)
            wait = beat
            if cancel:
                self.cancel_local(run_id)

    async def _listen_for_cancel(self) -> None:
        async with self.deps.bus.subscribe(CONTROL_TOPIC) as control:
            while True:
                message = await control.get()
                if message.get("type") == "CANCEL":
                    self.cancel_local(uuid.UUID(message["run_id"]))

    async def _sweep_forever(self) -> None:
        """Resume runs whose executor died (or whose enqueue was lost), here, within capacity.

        Claiming is atomic, so when several executors sweep at once each run goes to one.
        """
        while True:
            try:
                spare = self.capacity - len(self._running)
                stale = await self.store.stale(queued_for_seconds=self.stale_queued_seconds)
                for run_id in [r for r in stale if r not in self._running][: max(spare, 0)]:
                    if self.stopping:
                        break
                    log.info("handing out run %s again", run_id)
                    await self.resume(run_id)
            except Exception:
                log.warning("run sweep failed", exc_info=True)
            await asyncio.sleep(max(self.lease_seconds / 2, 0.5))


class _StepRecorder:
    """Writes node events of one run to the database in the order they happened.

    A step's start, success and failure are retried until written or the lease is lost, so the
    steps table never misses a transition that happened; progress is best effort (a failed
    progress write is dropped). Nothing is written once the lease has run out.
    """

    def __init__(self, store: RunStore, run_id: uuid.UUID, steps: set[str], lease: _Lease) -> None:
        self.store = store
        self.run_id = run_id
        self.steps = steps
        self.lease = lease
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self.last_progress: dict[str, float] = {}
        self.writer = asyncio.create_task(self._write_all())
        # Abandoned after a lost lease, its LeaseLost is nobody's business: retrieve it.
        self.writer.add_done_callback(lambda t: t.cancelled() or t.exception())

    def offer(self, event: dict[str, Any]) -> None:
        if event.get("node") in self.steps:
            # Thread-safe: the SDK runs sync nodes in a thread pool.
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    async def drain(self) -> None:
        """Wait until everything offered so far is written; LeaseLost if the lease was lost."""
        await asyncio.sleep(0)  # let events scheduled with call_soon_threadsafe land
        self.queue.put_nowait(None)
        await self.writer

    def abandon(self) -> None:
        """Write nothing more (the lease is lost)."""
        self.writer.cancel()

    async def _write_all(self) -> None:
        done = False
        while not done:
            event = await self.queue.get()
            if event is None:
                return
            # Whatever else has come meanwhile (a step's end and the next one's start) is
            # written in the same transaction.
            events = [event]
            while not self.queue.empty():
                more = self.queue.get_nowait()
                if more is None:
                    done = True
                    break
                events.append(more)
            await self._write_batch(events)

    async def _write_batch(self, events: list[dict[str, Any]]) -> None:
        """Transitions are retried until written; progress is best effort and goes alone."""
        transitions: list[StepChange] = []
        for event in events:
            change = self._change(event)
            if change is None:
                continue
            if change.kind != "STEP_PROGRESS":
                transitions.append(change)
                continue
            await self._write_transitions(transitions)
            transitions = []
            self.lease.check()
            try:
                await self.store.step_events(self.run_id, [change])
            except LeaseLost:
                self.lease.lose()
                raise
            except Exception as exc:
                _raise_if_cancelled(f"progress of run {self.run_id}", exc)
                log.warning("could not record progress of run %s", self.run_id, exc_info=True)
        await self._write_transitions(transitions)

    async def _write_transitions(self, changes: list[StepChange]) -> None:
        if changes:
            what = f"{', '.join(c.kind for c in changes)} of run {self.run_id}"
            await _until_recorded(
                self.lease, what, functools.partial(self.store.step_events, self.run_id, changes)
            )

    def _change(self, event: dict[str, Any]) -> StepChange | None:
        """The step change an SDK node event stands for; None when there is nothing to write."""
        step, kind = event["node"], event["type"]
        if kind == "started":
            return StepChange(step, "STEP_STARTED", message=f"{step} started")
        if kind == "succeeded":
            try:
                output = stored_output(event.get("output"))
            except UnstorableOutput:  # the run then fails as it ends (INTERNAL)
                return StepChange(step, "STEP_FAILED", message=UNSTORABLE_MESSAGE)
            return StepChange(step, "STEP_SUCCEEDED", message=f"{step} done", output=output)
        if kind == "failed":
            error = event["error"]
            if isinstance(error, asyncio.CancelledError):
                return None  # the run's end records it
            cause = domain_cause(error)
            message = cause.message if cause else "unexpected error"
            return StepChange(step, "STEP_FAILED", message=message)
        if kind == "progress":
            now = time.monotonic()
            total, current = event.get("total"), event.get("current", 0)
            last = total is not None and current >= total
            if not last and now - self.last_progress.get(step, 0.0) < PROGRESS_INTERVAL:
                return None
            self.last_progress[step] = now
            fraction = min(current / total, 1.0) if total else 0.0
            return StepChange(
                step, "STEP_PROGRESS", message=event.get("message") or "", fraction=fraction
            )
        return None
