"""Micro-batching: one worker thread owns the model; sync and async callers share it.

Requests that arrive while the worker is busy are merged into its next forward pass, so a
lone request pays no waiting time (``max_wait`` can add a short wait for more company).
Async callers await a future and never block the event loop; sync callers wait on the same
future, so both paths go through one core.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    def __init__(self, fn: Callable[[list[T]], list[R]], *, max_batch: int = 64,
                 max_wait: float = 0.0, name: str = "haloguard-batcher"):
        self._fn = fn
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._name = name
        self._queue: queue.SimpleQueue[tuple[list[T], Future]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, items: Sequence[T]) -> Future:
        """Queue ``items``; the future resolves to their results, in order."""
        future: Future = Future()
        self._queue.put((list(items), future))
        self._ensure_worker()
        return future

    def run(self, items: Sequence[T]) -> list[R]:
        if threading.current_thread() is self._thread:  # re-entrant call from inside fn
            return self._fn(list(items))
        return self.submit(items).result()

    async def arun(self, items: Sequence[T]) -> list[R]:
        return await asyncio.wrap_future(self.submit(items))

    def _ensure_worker(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while True:
            batch = [self._queue.get()]
            size = len(batch[0][0])
            deadline = time.monotonic() + self._max_wait
            while size < self._max_batch:
                try:
                    wait = deadline - time.monotonic()
                    item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
                size += len(item[0])
            self._process(batch)

    def _process(self, batch: list[tuple[list[T], Future]]) -> None:
        live = [(items, f) for items, f in batch if f.set_running_or_notify_cancel()]
        flat = [x for items, _ in live for x in items]
        try:
            results = self._fn(flat) if flat else []
        except Exception as e:  # noqa: BLE001 - delivered to the callers whose items fail
            if len(live) == 1:
                live[0][1].set_exception(e)
                return
            for items, f in live:  # one caller's bad item must not fail the others
                try:
                    f.set_result(self._fn(items))
                except Exception as each:  # noqa: BLE001
                    f.set_exception(each)
            return
        i = 0
        for items, f in live:
            f.set_result(results[i:i + len(items)])
            i += len(items)
