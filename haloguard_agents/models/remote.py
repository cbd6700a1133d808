"""A guard served over HTTP: any OpenAI-compatible chat-completions endpoint (vLLM, SGLang, ...).

One process loads a model once; many processes or machines share one served guard. The
served checkpoint must answer in HaloGuard's format (``safe`` / ``unsafe`` as the first
token). Each content is sent as the HaloGuard prompt with ``max_tokens: 1`` and
``top_logprobs: 20``; P(unsafe) is the probability mass of the ``unsafe`` tokens among the
first token's top log-probabilities, renormalised over ``safe`` + ``unsafe`` (the same number
the local generative guard computes from its two label logits). One token carries no
per-policy scores, so verdicts have ``policies == {}``.

Long text is split into overlapping character windows, each one request; the verdict is the
worst window, with its character span. Requests in flight are bounded by ``max_concurrency``
(per event loop for ``ascore``; across threads for ``score``). Connection errors, timeouts,
429 and 5xx are retried with exponential backoff; other 4xx are not. Every failure is a
``GuardError``, which the firewall turns into the surface's ``on_error`` action (fail closed
by default).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import ssl
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import tenacity

from ..content import Content, Surface, as_contents
from ..errors import ConfigError, GuardError, ModelLoadError
from ..policies import load_constitution
from ..verdict import Verdict
from .base import VerdictCache
from .formats import haloguard

log = logging.getLogger(__name__)

API_KEY_ENV = "HALOGUARD_API_KEY"
"""Read by ``load_guard("http...#model")`` (which has no ``api_key`` argument)."""


@dataclass(frozen=True)
class _Window:
    key: str
    start: int
    end: int
    text: str
    surface: Surface


class _Status(Exception):
    """A non-2xx answer; retried when transient (429, 5xx)."""

    def __init__(self, response: httpx.Response):
        super().__init__(response.status_code)
        self.status = response.status_code
        self.reason = response.reason_phrase
        self.body = _one_line(response.text, 200)


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, _Status):
        return exc.status == 429 or exc.status >= 500
    return isinstance(exc, httpx.TransportError)  # connect/read/write errors, timeouts, protocol errors


def _one_line(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def char_windows(text: str, size: int, overlap: int) -> list[tuple[int, int]]:
    """``(start, end)`` spans of ``size`` characters overlapping by ``overlap``; one span if short."""
    if len(text) <= size:
        return [(0, len(text))]
    stride = size - overlap
    spans = []
    start = 0
    while True:
        end = min(start + size, len(text))
        spans.append((start, end))
        if end == len(text):
            return spans
        start += stride


def unsafe_probability(body: Any) -> float:
    """P(unsafe) from a chat-completions response: ``unsafe`` vs ``safe`` mass in the first token's top logprobs.

    Tokens count for a label when they equal it after stripping whitespace and case; the mass of
    all such tokens is summed. When ``unsafe`` is not listed but ``safe`` is, its mass is not
    known, only bounded: by the smallest listed probability and by the mass not listed. The
    bound is used, so the score errs toward unsafe by at most that much (without it, a clean
    answer would read exactly 0). When ``safe`` is missing, P(unsafe) is 1.
    Raises ValueError when the response has no logprobs or neither label is among them.
    """
    try:
        first = body["choices"][0]["logprobs"]["content"][0]
        top = first.get("top_logprobs") or [first]
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ValueError("the response has no logprobs for the first token (does the server support "
                         "logprobs/top_logprobs?)") from None
    mass = {haloguard.SAFE: 0.0, haloguard.UNSAFE: 0.0}
    seen: list[str] = []
    listed: list[float] = []
    for entry in top:
        try:
            token, logprob = str(entry["token"]), float(entry["logprob"])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isnan(logprob):
            continue
        seen.append(token)
        listed.append(math.exp(logprob))
        label = token.strip().lower()
        if label in mass:
            mass[label] += listed[-1]
    safe, unsafe = mass[haloguard.SAFE], mass[haloguard.UNSAFE]
    if safe <= 0.0 and unsafe <= 0.0:
        shown = ", ".join(repr(t) for t in seen[:8]) or "none"
        raise ValueError(f"neither {haloguard.SAFE!r} nor {haloguard.UNSAFE!r} is among the first token's top "
                         f"logprobs (got {shown}); the served model does not answer in HaloGuard's format")
    if unsafe <= 0.0:
        unsafe = min(min(listed), max(0.0, 1.0 - sum(listed)))
    return unsafe / (safe + unsafe)


class RemoteGuard:
    """A HaloGuard-format generative guard behind an OpenAI-compatible ``/chat/completions``.

    ``base_url`` is the API root (``http://vllm:8000/v1``), ``model`` the served model name.
    ``timeout`` applies to connecting and to each read; ``retries`` is the number of extra
    attempts on transient failures. The ``api_key`` is sent as a bearer token and never logged.
    ``verify`` is httpx's: False, or an ``ssl.SSLContext`` for a private CA.
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 10.0,
                 retries: int = 2, max_concurrency: int = 16, policies: Sequence[str] | None = None,
                 window_chars: int = 6000, window_overlap: int = 500, cache_size: int = 4096,
                 verify: bool | ssl.SSLContext = True):
        parts = urlsplit(str(base_url).rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"remote guard base_url must be an http(s) URL with a host, got {base_url!r}")
        if not model:
            raise ConfigError("remote guard needs the served model name (`model`)")
        if window_overlap >= window_chars:
            raise ConfigError("window_overlap must be smaller than window_chars")
        if max_concurrency < 1 or retries < 0:
            raise ConfigError("max_concurrency must be >= 1 and retries >= 0")
        if parts.username or parts.password:
            raise ConfigError("put the remote guard's credentials in api_key, not in the URL")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        netloc = host + (f":{parts.port}" if parts.port else "")
        self.base_url = parts._replace(netloc=netloc, query="", fragment="").geturl()
        self.url = f"{self.base_url}/chat/completions"
        self.model = model
        self.model_id = f"remote:{model}@{netloc}"
        self.timeout = timeout
        self.retries = retries
        self.max_concurrency = max_concurrency
        self.window_chars = window_chars
        self.window_overlap = window_overlap
        try:
            self.policies = list(load_constitution().select(list(policies) if policies else None))
        except KeyError as e:
            raise ConfigError(str(e.args[0])) from None
        self.cache = VerdictCache(cache_size)
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        # One SSL context for every client: httpx builds a new one per client otherwise (~0.1 s each).
        self._ssl = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._client: httpx.Client | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._sync_slots = threading.BoundedSemaphore(max_concurrency)
        self._loop_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary())

    def __repr__(self) -> str:
        return f"RemoteGuard({self.base_url!r}, {self.model!r})"

    # -- the Guard protocol -----------------------------------------------------------------

    def score(self, contents: Sequence[Content | str]) -> list[Verdict]:
        keys, found, windows = self._plan(as_contents(contents))
        if windows:
            client = self._sync_client()
            if len(windows) == 1:
                probs = [self._post(client, windows[0])]
            else:
                pool = self._executor()
                futures = [pool.submit(self._post, client, w) for w in windows]
                done, pending = wait(futures, return_when=FIRST_EXCEPTION)
                for f in pending:
                    f.cancel()
                for f in done:
                    if f.exception() is not None:
                        raise f.exception()
                probs = [f.result() for f in futures]
            found.update(self._store(windows, probs))
        return [found[k] for k in keys]

    async def ascore(self, contents: Sequence[Content | str]) -> list[Verdict]:
        keys, found, windows = self._plan(as_contents(contents))
        if windows:
            slots = self._slots()
            # A client per call: an AsyncClient is bound to the loop that first used it, and a
            # per-loop cache cannot close its connections when that loop goes away.
            async with self._new_client(httpx.AsyncClient) as client:
                tasks = [asyncio.ensure_future(self._apost(client, slots, w)) for w in windows]
                try:
                    probs = await asyncio.gather(*tasks)
                except BaseException:
                    for t in tasks:
                        t.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    raise
            found.update(self._store(windows, probs))
        return [found[k] for k in keys]

    def close(self) -> None:
        """Close the sync connection pool and worker threads (``ascore`` holds nothing open)."""
        with self._lock:
            client, pool, self._client, self._pool = self._client, self._pool, None, None
        if client is not None:
            client.close()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    # -- windows, cache, reduction ------------------------------------------------------------

    def _plan(self, contents: Sequence[Content]) -> tuple[list[str], dict[str, Verdict], list[_Window]]:
        """Content keys, verdicts already cached, and the windows still to score."""
        keys = [c.key for c in contents]
        found: dict[str, Verdict] = {}
        windows: list[_Window] = []
        todo: set[str] = set()
        for key, content in zip(keys, contents):
            if key in todo or key in found:
                continue
            if (cached := self.cache.get(key)) is not None:
                found[key] = cached
                continue
            todo.add(key)
            text = content.scored_text
            for start, end in char_windows(text, self.window_chars, self.window_overlap):
                windows.append(_Window(key, start, end, text[start:end], content.surface))
        return keys, found, windows

    def _store(self, windows: list[_Window], probs: Sequence[float]) -> dict[str, Verdict]:
        """The worst window of each content becomes its verdict, cached."""
        best: dict[str, tuple[float, _Window]] = {}
        counts: dict[str, int] = {}
        for window, p in zip(windows, probs):
            counts[window.key] = counts.get(window.key, 0) + 1
            if window.key not in best or p > best[window.key][0]:
                best[window.key] = (p, window)
        fresh = {}
        for key, (p, window) in best.items():
            n = counts[key]
            fresh[key] = Verdict(unsafe=min(1.0, max(0.0, p)), policies={},
                                 span=None if n == 1 else (window.start, window.end), windows=n)
            self.cache.put(key, fresh[key])
        return fresh

    # -- HTTP -----------------------------------------------------------------------------------

    def _payload(self, window: _Window) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": haloguard.messages(window.text, window.surface, self.policies),
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": 20,
            # Qwen3-style templates: answer at once, as the local guard prompts (vLLM/SGLang honour it).
            "chat_template_kwargs": {"enable_thinking": False},
        }

    def _retrying(self, cls):
        return cls(
            stop=tenacity.stop_after_attempt(self.retries + 1),
            wait=tenacity.wait_exponential_jitter(initial=0.1, max=2.0, jitter=0.1),
            retry=tenacity.retry_if_exception(_transient),
            before_sleep=self._log_retry,
            reraise=True,
        )

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("remote guard %s: %s; retry %d of %d in %.2fs", self.url, self._describe(exc),
                    state.attempt_number, self.retries, state.next_action.sleep if state.next_action else 0.0)

    def _post(self, client: httpx.Client, window: _Window) -> float:
        payload = self._payload(window)
        try:
            for attempt in self._retrying(tenacity.Retrying):
                with attempt:
                    with self._sync_slots:
                        response = client.post(self.url, json=payload)
                    body = self._check(response)
        except Exception as e:  # noqa: BLE001 - every failure is one GuardError line
            raise self._error(e) from None
        return self._read(body)

    async def _apost(self, client: httpx.AsyncClient, slots: asyncio.Semaphore, window: _Window) -> float:
        payload = self._payload(window)
        try:
            async for attempt in self._retrying(tenacity.AsyncRetrying):
                with attempt:
                    async with slots:
                        response = await client.post(self.url, json=payload)
                    body = self._check(response)
        except Exception as e:  # noqa: BLE001
            raise self._error(e) from None
        return self._read(body)

    @staticmethod
    def _check(response: httpx.Response) -> Any:
        if not response.is_success:
            raise _Status(response)
        return response.json()

    def _read(self, body: Any) -> float:
        try:
            return unsafe_probability(body)
        except ValueError as e:
            raise GuardError(f"remote guard {self.url} (model {self.model}): {e}") from None

    def _describe(self, exc: BaseException | None) -> str:
        if isinstance(exc, _Status):
            return f"HTTP {exc.status} {exc.reason}".rstrip()
        if isinstance(exc, httpx.TimeoutException):
            return f"timed out after {self.timeout:g}s ({type(exc).__name__})"
        return f"{type(exc).__name__}: {_one_line(exc, 200)}" if exc else "failed"

    def _error(self, exc: BaseException) -> GuardError:
        attempts = f" after {self.retries + 1} attempts" if _transient(exc) and self.retries else ""
        where = f"remote guard {self.url}"
        if isinstance(exc, GuardError):
            return exc
        if isinstance(exc, _Status):
            hint = ""
            if exc.status == 401:
                hint = f"; the server wants an API key: set api_key (or ${API_KEY_ENV} for load_guard)"
            elif exc.status == 403:
                hint = "; the api_key is not allowed to use this model"
            elif exc.status == 404:
                hint = f"; check the base URL (it ends in /v1 for vLLM) and the served model name {self.model!r}"
            detail = f": {exc.body}" if exc.body else ""
            return GuardError(f"{where} returned HTTP {exc.status} {exc.reason}{attempts}{hint}{detail}")
        if isinstance(exc, ValueError):  # invalid JSON body
            return GuardError(f"{where} did not return JSON: {_one_line(exc, 200)}")
        if isinstance(exc, httpx.TransportError):
            return GuardError(f"{where} unreachable{attempts}: {self._describe(exc)}")
        return GuardError(f"{where} failed: {type(exc).__name__}: {_one_line(exc, 200)}")

    # -- clients and limits (fork- and loop-aware) ------------------------------------------

    def _new_client(self, cls):
        limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
        return cls(timeout=self.timeout, headers=self._headers, limits=limits, verify=self._ssl)

    def _sync_client(self) -> httpx.Client:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's sockets and threads are not ours
                self._pid, self._client, self._pool = os.getpid(), None, None
                self._sync_slots = threading.BoundedSemaphore(self.max_concurrency)
            if self._client is None:
                self._client = self._new_client(httpx.Client)
            return self._client

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="haloguard-remote")
            return self._pool

    def _slots(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        with self._lock:
            slots = self._loop_slots.get(loop)
            if slots is None:
                slots = self._loop_slots[loop] = asyncio.Semaphore(self.max_concurrency)
            return slots


_remote: dict[tuple, RemoteGuard] = {}
_remote_lock = threading.Lock()


def load_remote(url: str, *, policies: Sequence[str] | None = None) -> RemoteGuard:
    """``load_guard("http://host:8000/v1#MODEL")``: the served model name goes in the URL fragment.

    The API key, if the server wants one, comes from ``$HALOGUARD_API_KEY``. A second call with
    the same arguments returns the same guard. Build ``RemoteGuard`` directly for the other knobs.
    """
    base, _, fragment = str(url).partition("#")
    model = unquote(fragment).strip()
    if not model:
        raise ModelLoadError(
            f"{base}: name the served model after '#', e.g. load_guard('{base}#haloguard') "
            "(the name the server lists at /v1/models)"
        )
    api_key = os.environ.get(API_KEY_ENV) or None
    key = (base, model, api_key, tuple(policies) if policies else None)
    with _remote_lock:
        if key not in _remote:
            try:
                _remote[key] = RemoteGuard(base, model, api_key=api_key, policies=policies)
            except ConfigError as e:
                raise ModelLoadError(str(e)) from None
        return _remote[key]
