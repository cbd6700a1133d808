"""Query and chat engine wrappers: check the question before retrieval, the answer before the caller.

Sync, async and streaming paths are separate (``aquery`` awaits the firewall and the wrapped
engine's ``aquery``; nothing is run through the sync path); they share the response handling.
Anything stricter than ``log`` (``redact``, ``ask``, ``deny``) refuses: engines have no human in
the loop and cannot redact.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from typing import Any

from haloguard_agents import Content, Decision, Firewall, Surface
from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.base.response.schema import (
    RESPONSE_TYPE,
    AsyncStreamingResponse,
    Response,
    StreamingResponse,
)
from llama_index.core.chat_engine.types import (
    AGENT_CHAT_RESPONSE_TYPE,
    AgentChatResponse,
    BaseChatEngine,
    StreamingAgentChatResponse,
)
from llama_index.core.memory import BaseMemory
from llama_index.core.prompts.mixin import PromptMixinType
from llama_index.core.schema import QueryBundle

from .events import acheck, check
from .streaming import Windows, aguard_stream, guard_stream

REFUSAL = "I can't help with that request."
NOTICE = "\n\n[Response stopped: the rest did not pass the safety check.]"
METADATA_KEY = "haloguard"
"""Key under which responses carry the decisions that produced them."""


class _Gate:
    """What both wrappers share: the firewall calls for inputs, answers and stream windows."""

    def __init__(self, firewall: Firewall, component: str, refusal: str, notice: str,
                 window_chars: int, overlap_chars: int):
        self.firewall, self.component = firewall, component
        self.refusal, self.notice = refusal, notice
        self.windows = partial(Windows, window_chars, overlap_chars)
        self.windows()  # bad sizes fail here, not mid-stream

    def check(self, surface: Surface, text: str) -> Decision:
        return check(self.firewall, [Content(surface, text)], self.component)[0]

    async def acheck(self, surface: Surface, text: str) -> Decision:
        return (await acheck(self.firewall, [Content(surface, text)], self.component))[0]

    def stream(self, tokens: Iterator[str], decisions: list[Decision],
               on_block: Callable[[], None] | None = None) -> Iterator[str]:
        def check_window(text: str) -> Decision:
            decisions.append(self.check(Surface.MODEL_OUTPUT, text))
            return decisions[-1]

        return guard_stream(tokens, check_window, self.windows(), self.notice, on_block)

    def astream(self, tokens: AsyncIterator[str], decisions: list[Decision],
                on_block: Callable[[], Awaitable[None]] | None = None) -> AsyncIterator[str]:
        async def check_window(text: str) -> Decision:
            decisions.append(await self.acheck(Surface.MODEL_OUTPUT, text))
            return decisions[-1]

        return aguard_stream(tokens, check_window, self.windows(), self.notice, on_block)


class GuardedQueryEngine(BaseQueryEngine):
    """Wraps any query engine: the query is checked as ``user_input`` before retrieval, the answer
    as ``model_output``. A blocked query returns a refusal and never reaches the retriever or the
    LLM. Streaming answers are checked in windows as they arrive and cut with a notice.

    ``streaming`` says whether refusals must be streaming responses; by default it follows the
    wrapped engine's response synthesizer.
    """

    def __init__(self, engine: BaseQueryEngine, firewall: Firewall, *, refusal: str = REFUSAL, notice: str = NOTICE,
                 window_chars: int = 400, overlap_chars: int = 100, streaming: bool | None = None):
        self._engine = engine
        self._gate = _Gate(firewall, "GuardedQueryEngine", refusal, notice, window_chars, overlap_chars)
        synthesizer = getattr(engine, "_response_synthesizer", None)
        self._streaming = streaming if streaming is not None else bool(getattr(synthesizer, "_streaming", False))
        super().__init__(callback_manager=getattr(engine, "callback_manager", None))

    def _get_prompt_modules(self) -> PromptMixinType:
        return {"engine": self._engine}

    def _query(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        decision = self._gate.check(Surface.USER_INPUT, query_bundle.query_str)
        if not decision.allowed:
            return self._refuse(decision, is_async=False)
        response = self._engine.query(query_bundle)
        if isinstance(response, StreamingResponse):
            return self._stream(response, decision)
        return self._finish(response, [decision, self._gate.check(Surface.MODEL_OUTPUT, str(response))])

    async def _aquery(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        decision = await self._gate.acheck(Surface.USER_INPUT, query_bundle.query_str)
        if not decision.allowed:
            return self._refuse(decision, is_async=True)
        response = await self._engine.aquery(query_bundle)
        if isinstance(response, (StreamingResponse, AsyncStreamingResponse)):
            return self._stream(response, decision)
        return self._finish(response, [decision, await self._gate.acheck(Surface.MODEL_OUTPUT, str(response))])

    def _refuse(self, decision: Decision, *, is_async: bool) -> RESPONSE_TYPE:
        metadata = {METADATA_KEY: [decision]}
        if not self._streaming:
            return Response(self._gate.refusal, metadata=metadata)
        if is_async:
            return AsyncStreamingResponse(_agen(self._gate.refusal), metadata=metadata)
        return StreamingResponse(iter([self._gate.refusal]), metadata=metadata)

    def _finish(self, response: RESPONSE_TYPE, decisions: list[Decision]) -> RESPONSE_TYPE:
        metadata = {**(response.metadata or {}), METADATA_KEY: decisions}
        if decisions[-1].allowed:
            response.metadata = metadata
            return response
        return Response(self._gate.refusal, source_nodes=response.source_nodes, metadata=metadata)

    def _stream(self, response: StreamingResponse | AsyncStreamingResponse, decision: Decision) -> RESPONSE_TYPE:
        decisions = [decision]
        metadata = {**(response.metadata or {}), METADATA_KEY: decisions}  # windows append as they pass
        if isinstance(response, AsyncStreamingResponse):
            return AsyncStreamingResponse(self._gate.astream(response.async_response_gen(), decisions),
                                          source_nodes=response.source_nodes, metadata=metadata)
        return StreamingResponse(self._gate.stream(response.response_gen, decisions),
                                 source_nodes=response.source_nodes, metadata=metadata)


class GuardedChatEngine(BaseChatEngine):
    """Wraps any chat engine: each message is checked as ``user_input`` before the engine sees it,
    each answer as ``model_output`` (streamed answers in windows, cut with a notice). A blocked
    answer is also replaced in the wrapped engine's memory, when it exposes one, so the next turn
    does not build on it.
    """

    def __init__(self, engine: BaseChatEngine, firewall: Firewall, *, refusal: str = REFUSAL, notice: str = NOTICE,
                 window_chars: int = 400, overlap_chars: int = 100):
        self._engine = engine
        self._gate = _Gate(firewall, "GuardedChatEngine", refusal, notice, window_chars, overlap_chars)

    @property
    def chat_history(self) -> list[ChatMessage]:
        return self._engine.chat_history

    def reset(self) -> None:
        self._engine.reset()

    def chat(self, message: str, chat_history: list[ChatMessage] | None = None) -> AGENT_CHAT_RESPONSE_TYPE:
        decision = self._gate.check(Surface.USER_INPUT, message)
        if not decision.allowed:
            return AgentChatResponse(response=self._gate.refusal, metadata={METADATA_KEY: [decision]})
        response = self._engine.chat(message, chat_history)
        answer = self._gate.check(Surface.MODEL_OUTPUT, str(response))
        if not answer.allowed:
            _replace_last_answer(self._memory, self._gate.refusal)
        return self._finish(response, [decision, answer])

    async def achat(self, message: str, chat_history: list[ChatMessage] | None = None) -> AGENT_CHAT_RESPONSE_TYPE:
        decision = await self._gate.acheck(Surface.USER_INPUT, message)
        if not decision.allowed:
            return AgentChatResponse(response=self._gate.refusal, metadata={METADATA_KEY: [decision]})
        response = await self._engine.achat(message, chat_history)
        answer = await self._gate.acheck(Surface.MODEL_OUTPUT, str(response))
        if not answer.allowed:
            await _areplace_last_answer(self._memory, self._gate.refusal)
        return self._finish(response, [decision, answer])

    def stream_chat(self, message: str, chat_history: list[ChatMessage] | None = None) -> StreamingAgentChatResponse:
        decision = self._gate.check(Surface.USER_INPUT, message)
        if not decision.allowed:
            return _streamed(iter([self._gate.refusal]), None)
        response = self._engine.stream_chat(message, chat_history)
        text = self._gate.stream(response.response_gen, [decision],
                                 lambda: _replace_last_answer(self._memory, self._gate.notice.strip()))
        return _streamed(text, response)

    async def astream_chat(self, message: str,
                           chat_history: list[ChatMessage] | None = None) -> StreamingAgentChatResponse:
        decision = await self._gate.acheck(Surface.USER_INPUT, message)
        if not decision.allowed:
            return _streamed(_agen(self._gate.refusal), None)
        response = await self._engine.astream_chat(message, chat_history)

        async def on_block() -> None:
            await _areplace_last_answer(self._memory, self._gate.notice.strip())

        return _streamed(self._gate.astream(response.async_response_gen(), [decision], on_block), response)

    @property
    def _memory(self) -> BaseMemory | None:
        memory = getattr(self._engine, "_memory", None)  # LlamaIndex's chat engines keep it here
        return memory if isinstance(memory, BaseMemory) else None

    def _finish(self, response: AGENT_CHAT_RESPONSE_TYPE, decisions: list[Decision]) -> AGENT_CHAT_RESPONSE_TYPE:
        metadata = {**(getattr(response, "metadata", None) or {}), METADATA_KEY: decisions}
        if decisions[-1].allowed:
            response.metadata = metadata
            return response
        return AgentChatResponse(response=self._gate.refusal, sources=response.sources,
                                 source_nodes=response.source_nodes, metadata=metadata)


def _streamed(text: Iterator[str] | AsyncIterator[str],
              inner: StreamingAgentChatResponse | None) -> StreamingAgentChatResponse:
    """A streaming chat response that yields ``text`` (the inner engine already writes its memory)."""
    def chunks(delta: str) -> ChatResponse:
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=delta), delta=delta)

    async def achunks() -> AsyncIterator[ChatResponse]:
        async for delta in text:  # type: ignore[union-attr]
            yield chunks(delta)

    kwargs: dict[str, Any] = {"is_writing_to_memory": False}
    if inner is not None:
        kwargs.update(sources=inner.sources, source_nodes=inner.source_nodes)
    if hasattr(text, "__anext__"):
        return StreamingAgentChatResponse(achat_stream=achunks(), **kwargs)
    return StreamingAgentChatResponse(chat_stream=(chunks(d) for d in text), **kwargs)  # type: ignore[union-attr]


def _replace(messages: list[ChatMessage], text: str) -> list[ChatMessage] | None:
    if messages and messages[-1].role == MessageRole.ASSISTANT:
        return [*messages[:-1], ChatMessage(role=MessageRole.ASSISTANT, content=text)]
    return None


def _replace_last_answer(memory: BaseMemory | None, text: str) -> None:
    if memory is not None and (messages := _replace(memory.get_all(), text)) is not None:
        memory.set(messages)


async def _areplace_last_answer(memory: BaseMemory | None, text: str) -> None:
    if memory is not None and (messages := _replace(await memory.aget_all(), text)) is not None:
        await memory.aset(messages)


async def _agen(*items: str) -> AsyncIterator[str]:
    for item in items:
        yield item
