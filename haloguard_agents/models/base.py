"""The guard protocol, and the base every local model shares: cache, batching, sync/async."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..batching import MicroBatcher
from ..content import Content, as_contents
from ..verdict import Verdict


@runtime_checkable
class Guard(Protocol):
    """Anything that scores contents. Scores are probabilities in [0, 1]."""

    model_id: str
    """Name and revision, recorded in every decision."""

    # Optional: ``thresholds: Mapping[Surface, float]``, the model's recommended threshold per
    # surface, used by the firewall wherever the configuration does not set one.

    def score(self, contents: Sequence[Content]) -> list[Verdict]: ...

    async def ascore(self, contents: Sequence[Content]) -> list[Verdict]: ...


class VerdictCache:
    """A thread-safe LRU of verdicts by content hash: nothing is scored twice."""

    def __init__(self, size: int = 4096):
        self._size = size
        self._data: OrderedDict[str, Verdict] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Verdict | None:
        with self._lock:
            verdict = self._data.get(key)
            if verdict is not None:
                self._data.move_to_end(key)
            return verdict

    def put(self, key: str, verdict: Verdict) -> None:
        with self._lock:
            self._data[key] = verdict
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)


class LocalGuard:
    """Base for in-process models: subclasses implement ``_score_texts`` (one forward pass).

    Repeated content is answered from the cache; concurrent callers, sync or async, are merged
    into one batch by a worker thread that owns the model, so the event loop never runs torch.
    """

    model_id: str = "local"
    max_batch: int = 64

    def __init__(self, cache_size: int = 4096):
        self.cache = VerdictCache(cache_size)
        self._batcher: MicroBatcher[Content, Verdict] = MicroBatcher(
            self._score_uncached, max_batch=self.max_batch, name=f"haloguard:{self.model_id}"
        )

    def score(self, contents: Sequence[Content | str]) -> list[Verdict]:
        """Verdicts in order; a plain string is scored as a user input."""
        return self._batcher.run(as_contents(contents))

    async def ascore(self, contents: Sequence[Content | str]) -> list[Verdict]:
        return await self._batcher.arun(as_contents(contents))

    def _score_uncached(self, contents: list[Content]) -> list[Verdict]:
        keys = [c.key for c in contents]
        found = {k: v for k in set(keys) if (v := self.cache.get(k)) is not None}
        todo: dict[str, Content] = {}
        for key, content in zip(keys, contents):
            if key in found:
                continue
            if not content.scored_text.strip():  # nothing to read is nothing unsafe
                found[key] = Verdict(unsafe=0.0, windows=0)
            else:
                todo.setdefault(key, content)
        if todo:
            fresh = self._score_texts(list(todo.values()))
            for key, verdict in zip(todo, fresh):
                self.cache.put(key, verdict)
                found[key] = verdict
        return [found[k] for k in keys]

    def _score_texts(self, contents: list[Content]) -> list[Verdict]:
        raise NotImplementedError
