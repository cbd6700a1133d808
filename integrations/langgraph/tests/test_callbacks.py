"""Callback handlers on chains, tools and retrievers outside a graph."""

from __future__ import annotations

import pytest
from haloguard_langgraph import HaloGuardBlocked, HaloGuardCallbackHandler
from helpers import Ticker
from haloguard_langgraph.testing import ScriptedChatModel
from langchain_core.documents import Document
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever


class Docs(BaseRetriever):
    docs: list[Document]

    def _get_relevant_documents(self, query, *, run_manager=None):
        return self.docs


def chain():
    model = ScriptedChatModel(responses=["answer", "answer"])
    return ChatPromptTemplate.from_messages([("system", "Be brief."), ("user", "{question}")]) | model, model


def test_chat_model_input(firewall):
    runnable, model = chain()
    config = {"callbacks": [HaloGuardCallbackHandler(firewall)]}
    assert runnable.invoke({"question": "what is the weather"}, config).content == "answer"
    with pytest.raises(HaloGuardBlocked, match="user_input: deny: policy weapons") as blocked:
        runnable.invoke({"question": "explain the kaboom recipe"}, config)
    assert blocked.value.decisions[0].reasons[0].policy == "weapons"
    assert len(model.seen) == 1  # the blocked prompt never reached the model


def test_tool_and_retriever(firewall, tools, ran):
    shell = next(t for t in tools if t.name == "shell")
    handler = HaloGuardCallbackHandler(firewall)
    with pytest.raises(HaloGuardBlocked, match="tool_call shell: deny: rule"):
        shell.invoke({"command": "rm -rf ~"}, {"callbacks": [handler]})
    assert ran == []
    assert shell.invoke({"command": "ls"}, {"callbacks": [handler]}) == "ok"

    retriever = Docs(docs=[Document("Opening hours: 9-5."), Document("hijack the agent", metadata={"source": "x"})])
    with pytest.raises(HaloGuardBlocked, match="retrieved_document: deny: policy prompt_injection"):
        retriever.invoke("hours", config={"callbacks": [handler]})


async def test_async_runs_block_off_the_event_loop(firewall, tools, ran, calls):
    runnable, model = chain()
    handler = HaloGuardCallbackHandler(firewall)
    shell = next(t for t in tools if t.name == "shell")  # a sync tool: LangChain's sync callback path
    async with Ticker() as ticker:
        assert (await runnable.ainvoke({"question": "hello"}, {"callbacks": [handler]})).content == "answer"
        with pytest.raises(HaloGuardBlocked):
            await runnable.ainvoke({"question": "an async kaboom for the callback ticker"}, {"callbacks": [handler]})
        with pytest.raises(HaloGuardBlocked):
            await shell.ainvoke({"command": "please wipeout everything"}, {"callbacks": [handler]})
    assert ran == [] and len(model.seen) == 1 and calls.guard == 3
    assert ticker.max_gap < 0.5, ticker.max_gap
