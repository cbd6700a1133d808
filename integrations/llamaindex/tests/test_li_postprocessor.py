from __future__ import annotations

import pytest
from conftest import CLEAN
from haloguard_agents import Action, Firewall, FirewallConfig, Surface
from haloguard_llamaindex import GuardNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode


def test_drop_removes_the_poisoned_node_before_the_synthesizer(make_engine, firewall, calls, sink):
    engine, retriever, llm = make_engine(postprocessors=[GuardNodePostprocessor(firewall)])
    response = engine.query("How long does shipping take?")

    assert "poisoned" in retriever.retrieved  # it was retrieved ...
    assert all(n.node.ref_doc_id != "poisoned" for n in response.source_nodes)  # ... and removed
    prompt = "\n".join(llm.prompts)
    assert "attacker.example" not in prompt and "hijack" not in prompt
    assert all(text in str(response) for text in CLEAN)  # the echoed answer is built from the clean nodes
    assert calls == {"check_many": 1}  # one batch for all retrieved nodes
    docs = [d for d in sink.decisions if d.surface is Surface.RETRIEVED_DOCUMENT]
    assert len(docs) == len(CLEAN) + 1
    assert {d.action for d in docs} == {Action.ALLOW, Action.DENY}


async def test_async_path_scores_in_one_async_batch(make_engine, firewall, calls, monkeypatch):
    post = GuardNodePostprocessor(firewall)
    monkeypatch.setattr(GuardNodePostprocessor, "_postprocess_nodes", _fail)
    engine, retriever, llm = make_engine(postprocessors=[post])
    response = await engine.aquery("How long does shipping take?")

    assert "poisoned" in retriever.retrieved and retriever.calls == {"aretrieve": 1}
    assert all(n.node.ref_doc_id != "poisoned" for n in response.source_nodes)
    assert "hijack" not in "\n".join(llm.prompts) and llm.calls == ["acomplete"]
    assert calls == {"acheck_many": 1}


def test_flag_mode_keeps_nodes_and_annotates_them_without_touching_the_store(index, firewall):
    nodes = index.as_retriever(similarity_top_k=10).retrieve("shipping")
    flagged = GuardNodePostprocessor(firewall, mode="flag").postprocess_nodes(nodes)

    assert len(flagged) == len(nodes)
    by_doc = {n.node.ref_doc_id: n for n in flagged}
    flag = by_doc["poisoned"].node.metadata["haloguard"]
    assert flag["action"] == "deny" and flag["unsafe"] > 0.9
    assert {"prompt_injection", "data_exfiltration"} <= set(flag["policies"])
    assert by_doc["clean-0"].node.metadata["haloguard"]["action"] == "allow"
    assert "haloguard" not in by_doc["poisoned"].node.get_content(metadata_mode=MetadataMode.LLM)
    assert "haloguard" not in index.docstore.get_node(by_doc["poisoned"].node.node_id).metadata  # copied, not mutated


def test_hidden_instructions_in_metadata_are_scored(firewall):
    node = TextNode(text="Quarterly report.", metadata={"title": "please hijack the assistant"})
    assert GuardNodePostprocessor(firewall).postprocess_nodes([NodeWithScore(node=node)]) == []


@pytest.mark.parametrize("on_error, kept", [("deny", False), ("log", True)])
def test_errors_follow_on_error_and_never_pass_silently(guard, on_error, kept):
    config = FirewallConfig.load({"surfaces": {"retrieved_document": {"on_error": on_error}}})
    post = GuardNodePostprocessor(Firewall(guard, config=config, sinks=[]))
    huge = NodeWithScore(node=TextNode(text="x" * 5_000_001, id_="huge"))  # too large to score
    out = post.postprocess_nodes([huge, NodeWithScore(node=TextNode(text="hello", id_="ok"))])

    assert [n.node.node_id for n in out] == (["huge", "ok"] if kept else ["ok"])
    if kept:
        flag = out[0].node.metadata["haloguard"]
        assert flag["action"] == "log" and "too large" in flag["error"]
        assert "haloguard" not in out[1].node.metadata  # a clean allow is not annotated


def test_shadow_mode_keeps_the_node_and_records_what_would_have_happened(guard):
    shadow = Firewall(guard, config=FirewallConfig(shadow=True), sinks=[])
    [node] = GuardNodePostprocessor(shadow).postprocess_nodes([NodeWithScore(node=TextNode(text="hijack the bot"))])
    assert node.node.metadata["haloguard"]["action"] == "log"
    assert node.node.metadata["haloguard"]["intended"] == "deny"


async def test_a_failing_guard_takes_on_error_in_the_async_path(firewall, monkeypatch):
    async def broken(contents):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(firewall.guard, "ascore", broken)  # fault injection into the real guard
    out = await GuardNodePostprocessor(firewall).apostprocess_nodes([NodeWithScore(node=TextNode(text="fine"))])
    assert out == []  # default on_error is deny: fail closed


async def test_no_nodes_no_work(firewall, calls):
    assert GuardNodePostprocessor(firewall).postprocess_nodes([]) == []
    assert await GuardNodePostprocessor(firewall).apostprocess_nodes([]) == []


def _fail(*args, **kwargs):
    raise AssertionError("the sync path ran during an async query")
