from __future__ import annotations

import pytest
from haloguard_agents import Surface
from haloguard_llamaindex.streaming import Windows, aguard_stream, guard_stream

NOTICE = "[stopped]"


def _checker(firewall):
    return lambda text: firewall.check_output(text)


def test_a_trigger_split_across_deltas_is_never_released(firewall):
    tokens = ["The first part is fine and ", "calm. kab", "oom goes the rest"]
    out = list(guard_stream(tokens, _checker(firewall), Windows(20, 10), NOTICE))
    assert out == ["The first part is fine and ", NOTICE]  # windows are cut at whitespace, "kab" was held


def test_windows_carry_the_tail_of_released_text():
    windows = Windows(10, 4)
    assert windows.push("abcdefghijkl") == "abcdefghijkl" and windows.release() == "abcdefghijkl"
    assert windows.push("mnopqrstuvwx") == "ijkl" + "mnopqrstuvwx"
    windows.release()
    assert windows.push("yz") is None and windows.push(None) == "uvwx" + "yz"
    with pytest.raises(ValueError):
        Windows(10, 10)


async def test_closing_the_guarded_stream_closes_the_source(firewall, sink):
    closed = []

    def source():
        try:
            yield from ["hello there " * 5] * 10
        finally:
            closed.append("sync")

    async def asource():
        try:
            for _ in range(10):
                yield "hello there " * 5
        finally:
            closed.append("async")

    stream = guard_stream(source(), _checker(firewall), Windows(40, 10), NOTICE)
    next(stream)
    stream.close()
    astream = aguard_stream(asource(), firewall.acheck_output, Windows(40, 10), NOTICE)
    await anext(astream)
    await astream.aclose()
    assert closed == ["sync", "async"]
    assert {d.surface for d in sink.decisions} == {Surface.MODEL_OUTPUT}
