"""Windowed moderation of streamed text, shared by the query and chat engine wrappers.

Text is withheld until the window holding it has been checked, so nothing unsafe reaches the
caller: each window is scored together with the tail of the text already released (so a phrase
split across two windows is still seen whole), and the first unsafe window ends the stream with
a notice. The sync and async generators differ only in how they iterate and call the firewall.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from haloguard_agents import Decision


class Windows:
    """Buffers deltas into windows of about ``size`` characters, cut at whitespace."""

    def __init__(self, size: int = 400, overlap: int = 100):
        if not 0 <= overlap < size:
            raise ValueError("need 0 <= overlap < size")
        self.size, self.overlap = size, overlap
        self.pending = self.ready = self.context = ""

    def push(self, delta: str | None) -> str | None:
        """Add a delta (None: end of stream); return the next window to check, if one is full."""
        if delta is None:
            return self._take(len(self.pending)) if self.pending else None
        self.pending += delta
        if len(self.pending) < self.size:
            return None
        space = max(self.pending.rfind(" "), self.pending.rfind("\n"))
        return self._take(space + 1 if space >= self.size // 2 else len(self.pending))

    def _take(self, cut: int) -> str:
        self.ready, self.pending = self.pending[:cut], self.pending[cut:]
        return self.context + self.ready

    def release(self) -> str:
        """The checked text, now safe to yield; its tail becomes the next window's context."""
        text, self.ready = self.ready, ""
        self.context = (self.context + text)[-self.overlap:] if self.overlap else ""
        return text


_END = object()


def guard_stream(tokens: Iterator[str], check: Callable[[str], Decision], windows: Windows, notice: str,
                 on_block: Callable[[], None] | None = None) -> Iterator[str]:
    """Yield ``tokens`` as checked windows; on the first blocked window stop, call ``on_block``, yield ``notice``."""
    tokens, blocked = iter(tokens), False
    try:
        while True:
            delta = next(tokens, _END)
            window = windows.push(None if delta is _END else delta)
            if window is not None:
                if not check(window).allowed:
                    blocked = True
                    break
                yield windows.release()
            if delta is _END:
                break
    finally:
        if hasattr(tokens, "close"):
            tokens.close()  # lets the wrapped engine finish (e.g. write its chat history)
    if blocked:
        if on_block is not None:
            on_block()
        yield notice


async def aguard_stream(tokens: AsyncIterator[str], acheck: Callable[[str], Awaitable[Decision]], windows: Windows,
                        notice: str, on_block: Callable[[], Awaitable[None]] | None = None) -> AsyncIterator[str]:
    """The async twin of ``guard_stream``: same windows, awaited checks."""
    tokens, blocked = aiter(tokens), False
    try:
        while True:
            delta = await anext(tokens, _END)
            window = windows.push(None if delta is _END else delta)
            if window is not None:
                if not (await acheck(window)).allowed:
                    blocked = True
                    break
                yield windows.release()
            if delta is _END:
                break
    finally:
        if hasattr(tokens, "aclose"):
            await tokens.aclose()
    if blocked:
        if on_block is not None:
            await on_block()
        yield notice
