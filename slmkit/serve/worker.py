"""One thread runs all model work; prompts waiting to be decoded are decoded together in one batch.

Requests queue in arrival order. When the thread is free it takes the next job; when that is a
decode and the engine can batch, every other decode waiting (up to `max_batch`) joins it in one
`BatchDecoder`. Each request gets its own tokens as they come and leaves the batch when it stops
or its client goes. Other work (speculative decoding, llama.cpp, log-probs, embeddings) runs
alone; a new arrival waits for the running batch to finish. When the queue empties, freed heap
memory goes back to the OS, so the server's memory returns to its baseline after a burst.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import Any, AsyncIterator, Callable, Iterable

from slmkit.generation import SamplingParams
from slmkit.memory import return_freed_memory


class WorkerBusy(Exception):
    """The request queue is full."""


_DONE = object()
class Job:
    """Work for the thread: `run()` alone, or a `prompt` to decode with `params` (batchable); items go back to `out`."""

    def __init__(self, run: Callable[[], Iterable[Any]] | None = None, prompt: list[int] | None = None,
                 params: SamplingParams | None = None):
        self.run, self.prompt, self.params = run, prompt, params
        self.loop = asyncio.get_running_loop()
        self.out: asyncio.Queue = asyncio.Queue()
        self.cancelled = threading.Event()

    def send(self, item) -> bool:
        """Hand an item to the waiting request; False when it has gone."""
        if self.cancelled.is_set():
            return False
        try:
            self.loop.call_soon_threadsafe(self.out.put_nowait, item)
            return True
        except RuntimeError:  # its event loop is closed
            return False


class Worker:
    """The model thread in front of an engine; `max_batch` > 1 decodes waiting prompts together when the engine can."""

    def __init__(self, engine, max_queue: int = 512, max_batch: int = 8):
        self.engine = engine
        self.max_queue = max_queue
        self.max_batch = max_batch if getattr(engine, "can_batch", False) else 1
        self.pending: collections.deque[Job] = collections.deque()
        self.ready = threading.Condition()
        self.active = 0
        self.batches = 0  # decode batches run, and the requests they held
        self.batched = 0
        threading.Thread(target=self._loop, name="slmkit-model-worker", daemon=True).start()

    @property
    def waiting(self) -> int:
        return len(self.pending)

    def decode(self, ids: list[int], params: SamplingParams) -> AsyncIterator[int]:
        """The new tokens for a prompt, decoded in a batch with other waiting prompts when batching is on."""
        if self.max_batch > 1:
            return self._submit(lambda: Job(prompt=ids, params=params))
        return self.iterate(lambda: self.engine.stream(ids, params))

    def iterate(self, make: Callable[[], Iterable[Any]]) -> AsyncIterator[Any]:
        """Run `make()` alone on the thread and yield its items; stops it early if the consumer leaves."""
        return self._submit(lambda: Job(run=make))

    async def call(self, fn: Callable[[], Any]) -> Any:
        async for item in self.iterate(lambda: [fn()]):
            return item

    async def _submit(self, new_job: Callable[[], Job]) -> AsyncIterator[Any]:
        with self.ready:
            if len(self.pending) >= self.max_queue:
                raise WorkerBusy(f"{len(self.pending)} requests already waiting")
            job = new_job()
            self.pending.append(job)
            self.ready.notify()
        try:
            while True:
                item = await job.out.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            job.cancelled.set()

    def _loop(self) -> None:
        while True:
            jobs = self._take()
            self.active = len(jobs)
            try:
                if jobs[0].run is not None:
                    self._run_alone(jobs[0])
                else:
                    self._run_batch(jobs)
            except Exception as err:  # handed to the requests that caused it, never kills the worker
                for job in jobs:
                    job.send(err)
            finally:
                self.active = 0
            if not self.pending:
                return_freed_memory()

    def _take(self) -> list[Job]:
        """The next live job; when it is a decode, with the other decodes waiting (up to `max_batch`)."""
        with self.ready:
            while not self.pending or self.pending[0].cancelled.is_set():
                if self.pending:
                    self.pending.popleft()
                else:
                    self.ready.wait()
            first = self.pending.popleft()
            if first.run is not None:
                return [first]
            joining = [j for j in self.pending if j.run is None and not j.cancelled.is_set()][: self.max_batch - 1]
            for job in joining:
                self.pending.remove(job)
            return [first, *joining]

    def _run_alone(self, job: Job) -> None:
        for item in job.run():
            if not job.send(item):
                return
        job.send(_DONE)

    def _run_batch(self, jobs: list[Job]) -> None:
        self.batches, self.batched = self.batches + 1, self.batched + len(jobs)
        decoder = self.engine.batch_decoder([j.prompt for j in jobs], [j.params for j in jobs])
        while decoder.live:
            for request, token in decoder.step().items():
                job = jobs[request]
                if not job.send(token):
                    decoder.drop(request)
                elif request in decoder.stopped:
                    job.send(_DONE)
