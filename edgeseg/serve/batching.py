"""Dynamic batching: images queued by concurrent requests run through the model together.

A :class:`Batcher` owns one or more worker threads, each with its own :class:`~edgeseg.runtime.Segmenter`
(a Segmenter is not thread-safe). Requests are grouped by the Segmenter's size class, so images of different
sizes never share a run; the oldest queued image's group runs once it holds ``max_batch`` images or the
oldest has waited ``max_wait_ms`` (with ``track_arrivals``, also at once when no other request is on its
way: a lone client never waits for partners that cannot come). Every result is ``Segmenter.predict_batch``
of its group, which equals ``Segmenter.predict`` of each image alone. The inference runs in the worker
threads, so an asyncio event loop that awaits the returned futures keeps serving meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.runtime import Segmenter


class QueueFull(EdgesegError):
    """The batcher already holds ``max_queue`` images."""


class BatcherClosed(EdgesegError):
    """The batcher is shutting down and takes no new images."""


@dataclass
class _Job:
    image: np.ndarray
    future: Future = field(default_factory=Future)
    queued_at: float = field(default_factory=time.monotonic)


@dataclass
class Arrival:
    """A request on its way to :meth:`Batcher.submit` (see :meth:`Batcher.arriving`)."""

    done: bool = False


@dataclass(frozen=True)
class BatchResult:
    """One image's label map and the run it came from."""

    labels: np.ndarray
    batch_size: int
    inference_s: float


class Batcher:
    """Queue images from any thread and get their label maps as :class:`concurrent.futures.Future`.

    ``on_batch(size, seconds)`` is called after every model run (for metrics). ``close()`` stops taking
    images, lets the workers finish everything queued, and joins them. With ``track_arrivals``, callers wrap
    each request in :meth:`arriving`, and queued images wait only while some request is still arriving.
    """

    def __init__(
        self,
        segmenters: Sequence[Segmenter],
        max_batch: int,
        max_wait_ms: float,
        max_queue: int,
        on_batch: Callable[[int, float], None] | None = None,
        track_arrivals: bool = False,
    ) -> None:
        if not segmenters:
            raise ValueError("a Batcher needs at least one Segmenter")
        fixed = segmenters[0].max_batch
        self.max_batch = min(max_batch, fixed) if fixed else max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self._size_class = segmenters[0].size_class
        self._on_batch = on_batch
        self._groups: OrderedDict[Hashable, deque[_Job]] = OrderedDict()
        self._depth = 0
        self._closed = False
        self._arriving = 0
        self._track_arrivals = track_arrivals
        self._cond = threading.Condition()
        self._free = list(segmenters)  # sessions not running a batch
        self._threads = [
            threading.Thread(target=self._work, name=f"edgeseg-serve-{i}", daemon=True)
            for i in range(len(segmenters))
        ]
        for thread in self._threads:
            thread.start()

    @property
    def depth(self) -> int:
        """Images queued and not yet taken by a worker."""
        return self._depth

    @contextmanager
    def arriving(self) -> Iterator[Arrival]:
        """Mark a request that is still uploading or decoding: queued images wait for it (up to
        ``max_wait_ms``) since it may join their batch; with ``track_arrivals`` and none arriving, a batch
        runs at once. Pass the yielded :class:`Arrival` to :meth:`submit`, which ends it as it queues."""
        arrival = Arrival()
        with self._cond:
            self._arriving += 1
        try:
            yield arrival
        finally:
            with self._cond:
                if not arrival.done:
                    arrival.done = True
                    self._arriving -= 1
                    if self._groups:
                        self._cond.notify_all()

    def submit(self, image: np.ndarray, arrival: Arrival | None = None) -> Future:
        """Queue an H×W×3 uint8 RGB image; the future resolves to a :class:`BatchResult`.

        Cancelling the future before a worker takes it drops the image from the queue. Raises
        :class:`QueueFull` or :class:`BatcherClosed` without queueing. ``arrival`` (from :meth:`arriving`)
        ends with the queueing, in one step, so the worker does not wait for the image it just got.

        With ``track_arrivals``, an image that finds nothing queued, nobody else arriving and a free session
        runs at once in the calling thread (the future comes back done): a lone request then pays no thread
        hand-off, which on a busy machine costs milliseconds each way.
        """
        key = self._size_class(image)
        job = _Job(image)
        with self._cond:
            if arrival is not None and not arrival.done:
                arrival.done = True
                self._arriving -= 1
            if self._closed:
                raise BatcherClosed("the server is shutting down")
            if self._depth >= self.max_queue:
                raise QueueFull(f"{self._depth} images are queued (limit {self.max_queue})")
            alone = self._track_arrivals and self._arriving == 0 and not self._groups
            session = self._free.pop() if alone and self._free else None
            if session is None:
                # Tiled images (no size class) run alone: a key of their own never groups with another.
                self._groups.setdefault(key if key is not None else object(), deque()).append(job)
                self._depth += 1
                self._cond.notify_all()
        if session is not None:
            self._run([job], session)
        return job.future

    def close(self, timeout: float | None = None) -> None:
        """Take no more images, finish the queued ones, and stop the workers."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    def _oldest_group(self) -> tuple[Hashable, deque[_Job]] | None:
        best = None
        for key, jobs in self._groups.items():
            if best is None or jobs[0].queued_at < best[1][0].queued_at:
                best = (key, jobs)
        return best

    def _take(self) -> tuple[list[_Job], Segmenter] | None:
        """Wait for the next batch and a free session (None when closed and drained). Call unlocked."""
        with self._cond:
            while True:
                oldest = self._oldest_group()
                if oldest is None:
                    if self._closed:
                        return None
                    self._cond.wait()
                    continue
                if not self._free:  # every session is busy (one runs a caller's image): wait for one
                    self._cond.wait()
                    continue
                key, jobs = oldest
                wait = jobs[0].queued_at + self.max_wait_s - time.monotonic()
                full = len(jobs) >= self.max_batch
                alone = self._track_arrivals and self._arriving == 0
                if full or wait <= 0 or self._closed or alone:
                    batch = [jobs.popleft() for _ in range(min(self.max_batch, len(jobs)))]
                    if not jobs:
                        del self._groups[key]
                    self._depth -= len(batch)
                    return batch, self._free.pop()
                self._cond.wait(wait)

    def _work(self) -> None:
        while (taken := self._take()) is not None:
            self._run(*taken)

    def _run(self, batch: list[_Job], segmenter: Segmenter) -> None:
        """Run one batch on a session taken from the free list, and give the session back."""
        try:
            # A client that left before its image ran cancelled the future: skip the image.
            live = [job for job in batch if job.future.set_running_or_notify_cancel()]
            if not live:
                return
            start = time.perf_counter()
            try:
                labels = segmenter.predict_batch([job.image for job in live])
            except Exception as err:  # the model failed: every waiting request gets the error
                for job in live:
                    job.future.set_exception(err)
                return
            seconds = time.perf_counter() - start
            for job, mask in zip(live, labels, strict=True):
                job.future.set_result(BatchResult(mask, len(live), seconds))
            if self._on_batch is not None:
                self._on_batch(len(live), seconds)
        finally:
            with self._cond:
                self._free.append(segmenter)
                if self._groups:  # waking idle workers for nothing costs the caller the GIL, and time
                    self._cond.notify_all()
