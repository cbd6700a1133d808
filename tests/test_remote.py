"""RemoteGuard against a real OpenAI-compatible server on 127.0.0.1.

The server is stdlib ``http.server`` in a thread; its ``/v1/chat/completions`` runs the tiny
generative guard of ``haloguard_agents.testing`` with transformers (chat template over the
posted messages, one forward pass, first-token top-20 logprobs in OpenAI's response shape), so
the numbers the client reads are the model's. Knobs on the server inject 503s, 401s, delays
and off-format answers, and it counts requests and the most it had in flight at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from haloguard_agents import Action, Content, Firewall, FirewallConfig, GuardError, MemorySink, Surface, load_guard
from haloguard_agents.errors import ModelLoadError
from haloguard_agents.models.base import Guard
from haloguard_agents.models.remote import RemoteGuard, char_windows, unsafe_probability

MODEL = "haloguard-tiny"
KABOOM = "please kaboom the bank account"   # weapons 0.99
EDGY = "please edgy the bank account"       # harassment 0.6
CLEAN = "hello, please help me with my chemistry homework"
SMALL_POLICIES = ["weapons", "harassment", "misinformation", "prompt_injection", "fraud_scams"]


class GuardServer:
    """The tiny guard behind /v1/chat/completions, with fault injection and counters."""

    def __init__(self, directory):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True, dtype=torch.float32).eval()
        self.model_lock = threading.Lock()
        self.lock = threading.Lock()
        self.reset()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, answer = server.handle(self.path, self.headers, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def reset(self):
        self.fail_next, self.fail_status = 0, 503
        self.api_key = None
        self.delay = 0.0
        self.off_format = False
        self.requests = self.in_flight = self.max_in_flight = 0
        self.payloads: list[dict] = []

    def handle(self, path, headers, body):
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fail = self.fail_next > 0
            self.fail_next -= fail
        try:
            if self.delay:
                time.sleep(self.delay)
            if path != "/v1/chat/completions":
                return 404, {"error": {"message": f"no route {path}"}}
            if self.api_key and headers.get("Authorization") != f"Bearer {self.api_key}":
                return 401, {"error": {"message": "invalid or missing API key"}}
            if fail:
                return self.fail_status, {"error": {"message": "server overloaded"}}
            request = json.loads(body)
            with self.lock:
                self.payloads.append(request)
            if request.get("model") != MODEL:
                return 404, {"error": {"message": f"The model `{request.get('model')}` does not exist."}}
            return 200, self.complete(request)
        finally:
            with self.lock:
                self.in_flight -= 1

    def complete(self, request):
        prompt = self.tokenizer.apply_chat_template(
            request["messages"], tokenize=False, add_generation_prompt=True,
            **(request.get("chat_template_kwargs") or {}))
        ids = self.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with self.model_lock, torch.inference_mode():
            logprobs = torch.log_softmax(self.model(input_ids=ids).logits[0, -1].float(), dim=-1)
        top = torch.topk(logprobs, int(request.get("top_logprobs") or 1))
        entries = []
        for lp, i in zip(top.values.tolist(), top.indices.tolist()):
            token = self.tokenizer.convert_ids_to_tokens(i)
            if self.off_format:
                token = f"<tok{i}>"
            entries.append({"token": token, "logprob": lp, "bytes": list(token.encode())})
        first = entries[0]
        return {
            "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": MODEL,
            "choices": [{"index": 0, "finish_reason": "length",
                         "message": {"role": "assistant", "content": first["token"]},
                         "logprobs": {"content": [{**first, "top_logprobs": entries}]}}],
            "usage": {"prompt_tokens": ids.shape[1], "completion_tokens": 1, "total_tokens": ids.shape[1] + 1},
        }

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server(generative_dir):
    s = GuardServer(generative_dir)
    yield s
    s.close()


@pytest.fixture
def srv(server):
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def dead_url():
    """A port nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def remote(srv, **kw):
    return RemoteGuard(srv.url, MODEL, **kw)


CONTENTS = [
    Content(Surface.USER_INPUT, KABOOM),
    Content(Surface.TOOL_RESULT, EDGY),
    Content(Surface.MODEL_OUTPUT, CLEAN),
    Content.tool_call("send_email", {"to": ["cfo@example.com"], "body": "kaboom the report"}),
]


# -- scores: the served model's numbers, sync and async ------------------------------------------


def test_sync_and_async_match_local_guard(srv, generative_dir):
    # Five policies keep the local guard's per-policy pass cheap; the prompt is the same both sides.
    local = load_guard(generative_dir, policies=SMALL_POLICIES).score(CONTENTS)
    g = remote(srv, policies=SMALL_POLICIES)
    assert isinstance(g, Guard)
    assert g.model_id == f"remote:{MODEL}@127.0.0.1:{srv.url.split(':')[2].split('/')[0]}"
    sync = g.score(CONTENTS)
    fresh = remote(srv, policies=SMALL_POLICIES)  # its own cache: the async path really goes to the server
    async_ = asyncio.run(fresh.ascore(CONTENTS))
    for lv, sv, av in zip(local, sync, async_):
        assert sv.unsafe == pytest.approx(lv.unsafe, abs=1e-3)
        assert av.unsafe == pytest.approx(lv.unsafe, abs=1e-3)
        assert sv.policies == av.policies == {}
        assert sv.span is None and sv.windows == 1
    assert sync[0].unsafe == pytest.approx(0.99, abs=0.01)
    assert sync[1].unsafe == pytest.approx(0.6, abs=0.02)
    assert sync[2].unsafe == pytest.approx(0.008, abs=0.005)
    assert srv.requests == 2 * len(CONTENTS)
    sent = srv.payloads[0]
    assert (sent["max_tokens"], sent["temperature"], sent["logprobs"], sent["top_logprobs"]) == (1, 0, True, 20)


def test_verdicts_are_cached_and_deduplicated(srv):
    g = remote(srv)
    g.score([Content(Surface.USER_INPUT, KABOOM)] * 3)
    assert srv.requests == 1
    g.score([Content(Surface.USER_INPUT, KABOOM)])
    asyncio.run(g.ascore([Content(Surface.USER_INPUT, KABOOM)]))
    assert g.score([KABOOM]) == g.score([Content(Surface.USER_INPUT, KABOOM)])  # a string is a user input
    assert srv.requests == 1


def test_policy_selection_shapes_the_prompt(srv):
    g = remote(srv, policies=["weapons", "harassment"])
    assert g.score([Content(Surface.USER_INPUT, KABOOM)])[0].unsafe > 0.9
    prompt = srv.payloads[0]["messages"][0]["content"]
    assert "weapons: " in prompt and "harassment: " in prompt and "fraud_scams" not in prompt


def test_long_document_worst_window_with_span(srv):
    filler = "the weather report for the meeting is in the document. "
    text = (filler * (200_000 // len(filler) + 1))[:199_990] + " kaboom"
    assert len(text) == 200_000 - 3  # 199,990 + " kaboom"
    content = Content(Surface.RETRIEVED_DOCUMENT, text)
    g = remote(srv, policies=["weapons"])  # a shorter prompt: 37 forward passes of ~1,100 tokens
    start = time.perf_counter()
    v = g.score([content])[0]
    elapsed = time.perf_counter() - start
    windows = char_windows(content.scored_text, g.window_chars, g.window_overlap)
    assert v.windows == len(windows) == srv.requests > 30
    assert v.unsafe == pytest.approx(0.99, abs=0.01)
    assert v.span is not None and v.span[1] == len(content.scored_text)
    assert "kaboom" in content.scored_text[v.span[0]:v.span[1]]
    assert elapsed < 30


def test_char_windows_cover_the_text():
    assert char_windows("abc", 10, 2) == [(0, 3)]
    spans = char_windows("x" * 25, 10, 3)
    assert spans == [(0, 10), (7, 17), (14, 24), (21, 25)]


# -- reading the answer ---------------------------------------------------------------------------


def _response(top):
    return {"choices": [{"logprobs": {"content": [{"token": top[0][0], "logprob": top[0][1],
                                                    "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top]}]}}]}


def test_unsafe_probability_sums_label_variants():
    import math

    top = [(" unsafe", math.log(0.5)), ("Unsafe", math.log(0.1)), ("safe", math.log(0.2)),
           ("\nSAFE ", math.log(0.2)), ("maybe", math.log(0.1))]
    assert unsafe_probability(_response(top)) == pytest.approx(0.6 / 1.0)
    assert unsafe_probability(_response([("unsafe", -0.01), ("hello", -5.0)])) == 1.0
    # unsafe beyond the top logprobs: bounded by the smallest listed probability ...
    assert unsafe_probability(_response([("safe", math.log(0.5)), ("x", math.log(0.01))])) == pytest.approx(0.01 / 0.51)
    # ... and by the mass not listed
    assert unsafe_probability(_response([("safe", math.log(0.995)), ("x", math.log(0.004))])) == pytest.approx(
        0.001 / 0.996, rel=1e-6)
    with pytest.raises(ValueError, match="neither 'safe' nor 'unsafe'"):
        unsafe_probability(_response([("<think>", -0.1), ("Hello", -3.0)]))
    with pytest.raises(ValueError, match="no logprobs"):
        unsafe_probability({"choices": [{"message": {"content": "safe"}}]})


def test_off_format_model_raises_guard_error(srv):
    srv.off_format = True
    with pytest.raises(GuardError, match=r"neither 'safe' nor 'unsafe'.*HaloGuard's format") as e:
        remote(srv).score([Content(Surface.USER_INPUT, CLEAN)])
    assert srv.url in str(e.value) and "\n" not in str(e.value)
    assert srv.requests == 1


# -- retries and errors ---------------------------------------------------------------------------


def test_retries_transient_503_then_succeeds(srv, caplog):
    srv.fail_next = 2
    with caplog.at_level(logging.WARNING, logger="haloguard_agents"):
        v = remote(srv, retries=2).score([Content(Surface.USER_INPUT, KABOOM)])[0]
    assert v.unsafe == pytest.approx(0.99, abs=0.01)
    assert srv.requests == 3
    assert sum("HTTP 503" in r.getMessage() for r in caplog.records) == 2


async def test_retries_exhausted_async(srv):
    srv.fail_next, srv.fail_status = 10, 429
    with pytest.raises(GuardError, match=r"HTTP 429 .*after 2 attempts"):
        await remote(srv, retries=1).ascore([Content(Surface.USER_INPUT, CLEAN)])
    assert srv.requests == 2


def test_401_is_not_retried_and_names_api_key(srv, caplog):
    srv.api_key = "s3cret-key-123"
    with pytest.raises(GuardError) as e:
        remote(srv, retries=3).score([Content(Surface.USER_INPUT, CLEAN)])
    message = str(e.value)
    assert "HTTP 401" in message and "api_key" in message and srv.url in message and "\n" not in message
    assert srv.requests == 1
    wrong = remote(srv, api_key="wrong-key-456", retries=3)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(GuardError, match="HTTP 401") as e:
            wrong.score([Content(Surface.USER_INPUT, CLEAN)])
    assert srv.requests == 2
    assert "wrong-key-456" not in str(e.value) + repr(wrong) + caplog.text
    ok = remote(srv, api_key="s3cret-key-123")
    assert ok.score([Content(Surface.USER_INPUT, KABOOM)])[0].unsafe > 0.9
    assert "s3cret" not in repr(ok) + caplog.text


def test_404_unknown_model_is_not_retried(srv):
    with pytest.raises(GuardError, match=r"HTTP 404.*served model name 'nope'.*does not exist"):
        RemoteGuard(srv.url, "nope", retries=3).score([Content(Surface.USER_INPUT, CLEAN)])
    assert srv.requests == 1


def test_server_down_fails_fast(dead_url):
    g = RemoteGuard(dead_url, MODEL, retries=2, timeout=2.0)
    start = time.perf_counter()
    with pytest.raises(GuardError, match=r"unreachable after 3 attempts: ConnectError") as e:
        g.score([Content(Surface.USER_INPUT, CLEAN)])
    assert time.perf_counter() - start < 3.0
    assert dead_url in str(e.value)
    start = time.perf_counter()
    with pytest.raises(GuardError, match="unreachable"):
        asyncio.run(g.ascore([Content(Surface.USER_INPUT, CLEAN)]))
    assert time.perf_counter() - start < 3.0


def test_read_timeout_is_bounded(srv):
    srv.delay = 1.0
    start = time.perf_counter()
    with pytest.raises(GuardError, match=r"timed out after 0.2s"):
        remote(srv, timeout=0.2, retries=1).score([Content(Surface.USER_INPUT, CLEAN)])
    assert time.perf_counter() - start < 1.5
    assert srv.requests == 2


async def test_firewall_fails_closed_when_server_down(dead_url):
    sink = MemorySink()
    config = FirewallConfig.load({"surfaces": {"retrieved_document": {"on_error": "log"}}})
    fw = Firewall(RemoteGuard(dead_url, MODEL, retries=0), config=config, sinks=[sink])
    d = fw.check_tool_call("send_email", {"to": "cfo@example.com", "body": "numbers attached"})
    assert d.action is Action.DENY
    assert d.error and "GuardError" in d.error and dead_url in d.error
    assert d.reasons[-1].kind == "error"
    d = await fw.acheck_tool_call("send_email", {"to": "cfo@example.com", "body": "numbers attached"})
    assert d.action is Action.DENY and "GuardError" in d.error
    d = await fw.acheck_document("a retrieved page")
    assert d.action is Action.LOG and d.error
    assert d.model == f"remote:{MODEL}@{dead_url.split('//')[1].split('/')[0]}"


async def test_firewall_over_remote_guard_scores(srv):
    fw = Firewall(remote(srv), sinks=[MemorySink()])
    bad, good = await fw.acheck_many([Content(Surface.USER_INPUT, KABOOM), Content(Surface.USER_INPUT, CLEAN)])
    assert bad.action is Action.DENY and bad.verdict.unsafe > 0.9
    assert good.action is Action.ALLOW and good.error is None


# -- concurrency ----------------------------------------------------------------------------------


async def test_concurrent_ascore_bounded(srv):
    srv.delay = 0.05
    g = remote(srv, max_concurrency=4, policies=["weapons"])
    results = await asyncio.gather(*(g.ascore([Content(Surface.USER_INPUT, f"{CLEAN} number {i}")])
                                     for i in range(20)))
    assert len(results) == 20 and all(r[0].unsafe < 0.05 for r in results)
    assert srv.requests == 20
    assert 1 < srv.max_in_flight <= 4


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_windows_in_parallel_bounded(srv, mode):
    srv.delay = 0.02
    g = remote(srv, max_concurrency=3, window_chars=200, window_overlap=20, policies=["weapons"])
    text = "kaboom " + "hello there " * 150
    contents = [Content(Surface.TOOL_RESULT, text), Content(Surface.TOOL_RESULT, text[7:])]
    bad, clean = g.score(contents) if mode == "sync" else asyncio.run(g.ascore(contents))
    assert bad.unsafe > 0.9 and bad.span[0] == 0 and bad.windows > 3
    assert clean.unsafe < 0.05 and clean.span is not None
    assert srv.requests == bad.windows + clean.windows
    assert 1 < srv.max_in_flight <= 3
    g.close()


def test_one_guard_shared_across_event_loops(srv):
    g = remote(srv)
    a = asyncio.run(g.ascore([Content(Surface.USER_INPUT, KABOOM)]))
    b = asyncio.run(g.ascore([Content(Surface.USER_INPUT, EDGY)]))
    assert a[0].unsafe > 0.9 and b[0].unsafe == pytest.approx(0.6, abs=0.02)


# -- load_guard -----------------------------------------------------------------------------------


def test_load_guard_dispatches_urls(srv, monkeypatch):
    monkeypatch.delenv("HALOGUARD_API_KEY", raising=False)
    g = load_guard(f"{srv.url}#{MODEL}")
    assert isinstance(g, RemoteGuard) and g.model == MODEL and g.base_url == srv.url
    assert load_guard(f"{srv.url}#{MODEL}") is g
    assert g.score([Content(Surface.USER_INPUT, KABOOM)])[0].unsafe > 0.9
    small = load_guard(f"{srv.url}/#{MODEL}", policies=["weapons"])
    assert small is not g and [p.id for p in small.policies] == ["weapons"]
    with pytest.raises(ModelLoadError, match="#haloguard"):
        load_guard(srv.url)


def test_load_guard_reads_api_key_from_env(srv, monkeypatch):
    srv.api_key = "env-key-789"
    monkeypatch.setenv("HALOGUARD_API_KEY", "env-key-789")
    g = load_guard(f"{srv.url}#{MODEL}")
    assert g.score([Content(Surface.USER_INPUT, EDGY)])[0].unsafe == pytest.approx(0.6, abs=0.02)
