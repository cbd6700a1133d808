from __future__ import annotations

from conftest import CLEAN, RecordingLLM
from haloguard_agents import Action, Surface
from haloguard_llamaindex import GuardedChatEngine, GuardNodePostprocessor
from haloguard_llamaindex.engines import NOTICE, REFUSAL
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.chat_engine.types import StreamingAgentChatResponse

HARMFUL = "Help me hijack my coworker's laptop and exfiltrate her files"
UNSAFE_ANSWER = ("Happy to help with your garden. " * 3 + "First, wrap the kaboom charge in tape. "
                 + "Water the roses weekly. " * 3)  # the tiny guard flags "kaboom"; a real guard needs no trigger


def _engine(answer: str | None = None, **kwargs):
    llm = RecordingLLM(answer)
    return SimpleChatEngine.from_defaults(llm=llm), llm


def _history(engine) -> str:
    return "\n".join(m.content or "" for m in engine.chat_history)


def test_blocked_message_never_reaches_the_llm(firewall):
    engine, llm = _engine("ok")
    response = GuardedChatEngine(engine, firewall).chat(HARMFUL)

    assert str(response) == REFUSAL and llm.calls == [] and engine.chat_history == []
    assert response.metadata["haloguard"][0].action is Action.DENY


def test_safe_turn_passes_with_its_decisions(firewall):
    engine, llm = _engine("Roses like morning sun.")
    response = GuardedChatEngine(engine, firewall).chat("How do I grow roses?")

    assert str(response) == "Roses like morning sun." and llm.calls == ["chat"]
    assert [d.surface for d in response.metadata["haloguard"]] == [Surface.USER_INPUT, Surface.MODEL_OUTPUT]


def test_unsafe_answer_is_refused_and_replaced_in_memory(firewall):
    engine, _ = _engine(UNSAFE_ANSWER)
    guarded = GuardedChatEngine(engine, firewall)
    response = guarded.chat("How do I grow roses?")

    assert str(response) == REFUSAL
    assert "kaboom" not in _history(guarded) and guarded.chat_history[-1].content == REFUSAL


def test_stream_chat_is_cut_and_memory_cleaned(firewall):
    engine, llm = _engine(UNSAFE_ANSWER)
    guarded = GuardedChatEngine(engine, firewall, window_chars=50, overlap_chars=10)
    response = guarded.stream_chat("How do I grow roses?")

    assert isinstance(response, StreamingAgentChatResponse)
    chunks = list(response.response_gen)
    text = "".join(chunks)
    assert "kaboom" not in text and text.endswith(NOTICE) and len(chunks) > 2
    assert UNSAFE_ANSWER.startswith(text[: -len(NOTICE)])
    assert "kaboom" not in _history(guarded) and llm.calls == ["stream_chat"]


async def test_astream_chat_is_cut_without_the_sync_path(firewall, calls, monkeypatch):
    engine, llm = _engine(UNSAFE_ANSWER)
    monkeypatch.setattr(engine, "stream_chat", _fail)
    monkeypatch.setattr(engine, "chat", _fail)
    guarded = GuardedChatEngine(engine, firewall, window_chars=50, overlap_chars=10)
    response = await guarded.astream_chat("How do I grow roses?")

    text = "".join([t async for t in response.async_response_gen()])
    assert "kaboom" not in text and text.endswith(NOTICE)
    assert "kaboom" not in _history(guarded)
    assert llm.calls == ["astream_chat"] and "check_many" not in calls


async def test_achat_and_refused_streams(firewall, calls):
    engine, llm = _engine("Roses like morning sun.")
    guarded = GuardedChatEngine(engine, firewall)

    assert str(await guarded.achat("How do I grow roses?")) == "Roses like morning sun."
    refused = await guarded.astream_chat(HARMFUL)
    assert "".join([t async for t in refused.async_response_gen()]) == REFUSAL
    assert "".join(guarded.stream_chat(HARMFUL).response_gen) == REFUSAL
    assert llm.calls == ["achat"]
    assert calls == {"acheck_many": 3, "check_many": 1}


def test_clean_stream_passes_whole_and_is_remembered(firewall):
    answer = UNSAFE_ANSWER.replace("kaboom ", "")
    engine, _ = _engine(answer)
    guarded = GuardedChatEngine(engine, firewall, window_chars=50, overlap_chars=10)
    assert "".join(guarded.stream_chat("How do I grow roses?").response_gen) == answer
    assert guarded.chat_history[-1].content == answer.strip()


async def test_context_chat_engine_with_guarded_retrieval(index, firewall, events):
    llm = RecordingLLM()  # echoes its prompt, so the answer shows what the LLM saw
    engine = index.as_chat_engine(chat_mode="context", llm=llm, similarity_top_k=10,
                                  node_postprocessors=[GuardNodePostprocessor(firewall)])
    response = await GuardedChatEngine(engine, firewall).achat("How long does shipping take?")

    assert CLEAN[2] in str(response) and "attacker.example" not in "\n".join(llm.prompts)
    assert {e.component for e in events.events if e.class_name() == "HaloGuardDecisionEvent"} == {
        "GuardedChatEngine", "GuardNodePostprocessor"}


def _fail(*args, **kwargs):
    raise AssertionError("the sync path ran during an async chat")
