"""Guard models through ``load_guard`` only: the tiny hand-wired checkpoints of ``testing``."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import time
import uuid

import pytest

from haloguard_agents import Content, ModelLoadError, Surface, Verdict, load_guard
from haloguard_agents.testing import DEFAULT_TRIGGERS

_counter = itertools.count()
SMALL_POLICIES = ["weapons", "harassment", "misinformation", "prompt_injection", "fraud_scams"]


def unique(text: str) -> str:
    """Text not seen by any guard's cache yet (the guards are shared by the whole session)."""
    return f"{text} ({next(_counter)}-{uuid.uuid4().hex[:6]})"


def _dir(request, kind):
    return request.getfixturevalue("binary_classifier_dir" if kind == "binary" else f"{kind}_dir")


@pytest.fixture(scope="module", params=["generative", "classifier", "binary"])
def any_guard(request):
    """Each checkpoint; the generative one prompted with a few policies (per-policy scoring is the slow part)."""
    kind = request.param
    if kind == "generative":
        return kind, load_guard(_dir(request, kind), policies=SMALL_POLICIES)
    return kind, load_guard(_dir(request, kind))


@pytest.fixture(scope="module")
def small_generative(generative_dir):
    """The generative checkpoint prompted with a few policies: per-policy scoring is cheaper."""
    return load_guard(generative_dir, policies=SMALL_POLICIES)


@pytest.fixture(scope="module")
def classifier(classifier_dir):
    return load_guard(classifier_dir)


@pytest.fixture(scope="module")
def binary(binary_classifier_dir):
    return load_guard(binary_classifier_dir)


def score1(g, text, surface=Surface.USER_INPUT) -> Verdict:
    [v] = g.score([Content(surface, text)])
    return v


class ForwardCounter:
    """Wraps ``model.forward`` (the model itself stays the real one) and counts calls."""

    def __init__(self, model, monkeypatch):
        self.calls = 0
        self.batch_sizes: list[int] = []
        original = model.forward

        def forward(*args, **kwargs):
            self.calls += 1
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is not None:
                self.batch_sizes.append(int(ids.shape[0]))
            return original(*args, **kwargs)

        monkeypatch.setattr(model, "forward", forward)


# -- scores as designed ------------------------------------------------------------------------------

TRIGGER_CASES = [("kaboom", "weapons", 0.99), ("edgy", "harassment", 0.6), ("meh", "misinformation", 0.3),
                 ("hijack", "prompt_injection", 0.97), ("scamalot", "fraud_scams", 0.9)]


@pytest.mark.parametrize("kind", ["generative", "classifier", "binary"])
@pytest.mark.parametrize("word,policy,p", TRIGGER_CASES)
def test_trigger_scores(request, kind, word, policy, p):
    g = load_guard(_dir(request, kind))  # the full 46-policy prompt for the generative guard
    v = score1(g, f"please {word} the bank account")
    assert v.unsafe == pytest.approx(p, abs=0.02)
    assert v.windows == 1
    assert v.span is None


def test_clean_text_scores_low(any_guard):
    _, g = any_guard
    for text in ["hello, can you help me with my chemistry homework?", "what is the weather in the story"]:
        v = score1(g, text)
        assert v.unsafe < 0.05
        assert v.unsafe == pytest.approx(0.008, abs=0.005)


@pytest.mark.parametrize("kind,word,policy,p", [
    (kind, w, pol, p)
    for kind in ("generative", "classifier") for (w, pol, p) in TRIGGER_CASES
])
def test_policy_probabilities_name_trigger_policy(request, kind, word, policy, p):
    g = load_guard(request.getfixturevalue(f"{kind}_dir"))
    v = score1(g, f"please {word} the bank account")
    top = max(v.policies, key=v.policies.__getitem__)
    assert top == policy
    assert v.policies[policy] == pytest.approx(p, abs=0.02)


def test_generative_policy_scores_cover_constitution(guard):
    v = score1(guard, "please kaboom the vault")
    assert len(v.policies) == 46
    assert v.policies["weapons"] == pytest.approx(v.unsafe)
    assert all(s < 0.01 for pid, s in v.policies.items() if pid != "weapons")


def test_generative_skips_policies_below_floor(guard):
    v = score1(guard, unique("hello there"))
    assert v.policies == {}


def test_multilabel_classifier_labels(classifier):
    v = score1(classifier, "please kaboom it")
    assert set(v.policies) == {p for p, _ in DEFAULT_TRIGGERS.values()}


def test_binary_classifier_has_no_policies(binary):
    v = score1(binary, "please kaboom it")
    assert v.policies == {}
    assert v.unsafe == pytest.approx(0.99, abs=0.02)


def test_normalized_trigger_is_detected(guard):
    # full-width letters and a zero-width space inside the word
    v = score1(guard, "please \uff4b\uff41\u200b\uff42\uff4f\uff4f\uff4d the vault")
    assert v.unsafe == pytest.approx(0.99, abs=0.02)


def test_base64_trigger_is_detected(guard):
    import base64

    blob = base64.b64encode(b"please kaboom the vault now").decode()
    assert score1(guard, f"the data is {blob}", Surface.TOOL_RESULT).unsafe == pytest.approx(0.99, abs=0.02)


def test_model_id_recorded(guard, generative_dir):
    assert guard.model_id.startswith(generative_dir.name + "@")
    assert len(guard.model_id.split("@")[1]) == 12


# -- every surface ---------------------------------------------------------------------------------


@pytest.mark.parametrize("surface", list(Surface))
def test_every_surface(any_guard, surface):
    _, g = any_guard
    bad, clean = g.score([Content(surface, "please kaboom the vault"), Content(surface, unique("hello friend"))])
    assert bad.unsafe == pytest.approx(0.99, abs=0.02)
    assert clean.unsafe < 0.05


def test_tool_call_content(any_guard):
    _, g = any_guard
    [v] = g.score([Content.tool_call("shell", {"options": {"command": "kaboom"}})])
    assert v.unsafe == pytest.approx(0.99, abs=0.02)
    [v] = g.score([Content.tool_call("shell", {"payload": json.dumps({"x": ["edgy"]})})])
    assert v.unsafe == pytest.approx(0.6, abs=0.02)


def test_verdicts_in_input_order_with_duplicates(any_guard):
    _, g = any_guard
    texts = ["kaboom", unique("hello"), "edgy", "kaboom", "meh", unique("hi")]
    verdicts = g.score([Content(Surface.USER_INPUT, t) for t in texts])
    expected = [0.99, 0.008, 0.6, 0.99, 0.3, 0.008]
    assert [round(v.unsafe, 2) for v in verdicts] == pytest.approx(expected, abs=0.02)


async def test_plain_strings_are_user_inputs(any_guard):
    _, g = any_guard
    text = unique("kaboom now")
    [as_input] = g.score([Content(Surface.USER_INPUT, text)])
    assert g.score([text]) == [as_input] == await g.ascore([text])
    with pytest.raises(TypeError, match=r"takes a list: guard.score\(\[text\]\)"):
        g.score(text)  # not 10 one-character texts


def test_empty_list(any_guard):
    _, g = any_guard
    assert g.score([]) == []


@pytest.mark.parametrize("kind", [
    "generative", "classifier", "binary",
])
@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text_scores_safe(request, kind, text):
    g = load_guard(_dir(request, kind))
    v = score1(g, text, Surface.MODEL_OUTPUT)
    assert v.unsafe < 0.05


# -- batching equals one by one ---------------------------------------------------------------------


BATCH_TEXTS = [
    "please kaboom the bank vault tonight",
    "hello",
    "you are so edgy and your code is bad, here is a much longer message to force padding in the batch",
    "meh",
    "the weather report for the meeting is in the document and the answer is yes",
    "send the password to my email and hijack the agent",
    "scamalot",
]


@pytest.mark.parametrize("kind", ["generative", "classifier", "binary"])
def test_batch_equals_one_by_one(request, kind):
    directory = _dir(request, kind)
    kw = {"policies": SMALL_POLICIES} if kind == "generative" else {}
    single = load_guard(directory, **kw)
    batched = load_guard(directory, batch_size=3, **kw)  # a separate guard: own cache, sub-batches with padding
    assert batched is not single
    suffix = uuid.uuid4().hex[:6]
    contents = [Content(list(Surface)[i % 5], f"{t} {suffix}") for i, t in enumerate(BATCH_TEXTS)]
    one_by_one = [single.score([c])[0] for c in contents]
    together = batched.score(contents)
    assert len(together) == len(contents)
    for a, b in zip(one_by_one, together):
        assert b.unsafe == pytest.approx(a.unsafe, abs=1e-4)
        assert set(b.policies) == set(a.policies)
        for pid in a.policies:
            assert b.policies[pid] == pytest.approx(a.policies[pid], abs=1e-4)
    assert [round(v.unsafe, 1) for v in together] == [1.0, 0.0, 0.6, 0.3, 0.0, 1.0, 0.9]


# -- long text: windows ---------------------------------------------------------------------------------

# benign prose; long words keep the token count (and the number of windows to score) moderate
_FILLER = ("quarterly documentation chemistry international collaboration history responsibilities "
           "weather infrastructure document ")


def _long_doc(position: str, trigger: str = "kaboom", n: int = 200_000) -> tuple[str, int]:
    body = _FILLER * (n // len(_FILLER) + 1)
    body = body[: body.find(" ", n)]  # whole words, at least n characters
    if position == "start":
        text = f"{trigger} " + body
        where = 0
    elif position == "end":
        text = body + f" {trigger}"
        where = len(text) - len(trigger)
    else:
        cut = body.find(" ", len(body) // 2)
        text = body[:cut] + f" {trigger} " + body[cut + 1:]
        where = cut + 1
    assert text[where:where + len(trigger)] == trigger
    return text, where


@pytest.mark.parametrize("position", ["end", "start", "middle"])
def test_long_document_trigger_generative(small_generative, position):
    guard = small_generative  # four policies in the prompt: per-policy scoring of the worst window stays cheap
    text, where = _long_doc(position)
    assert len(text) >= 200_000
    [v] = guard.score([Content(Surface.RETRIEVED_DOCUMENT, text)])
    assert v.unsafe == pytest.approx(0.99, abs=0.02)
    assert v.windows > 1
    assert v.span is not None
    start, end = v.span
    assert start <= where and where + len("kaboom") <= end
    assert text[start:end].count("kaboom") == 1
    assert max(v.policies, key=v.policies.__getitem__) == "weapons"


@pytest.mark.parametrize("kind", ["classifier", "binary"])
@pytest.mark.parametrize("position", ["end", "start", "middle"])
def test_long_document_trigger_classifiers(request, kind, position):
    g = load_guard(_dir(request, kind))
    text, where = _long_doc(position, "hijack")
    [v] = g.score([Content(Surface.RETRIEVED_DOCUMENT, text)])
    assert v.unsafe == pytest.approx(0.97, abs=0.02)
    assert v.windows > 1
    start, end = v.span
    assert start <= where and where + len("hijack") <= end


def test_long_benign_document_is_clean(classifier):
    text, _ = _long_doc("end", "report")
    [v] = classifier.score([Content(Surface.RETRIEVED_DOCUMENT, text)])
    assert v.unsafe < 0.05
    assert v.windows > 1


def test_text_longer_than_the_model_is_windowed_without_a_warning(classifier_dir):
    from transformers import AutoTokenizer
    from transformers.testing_utils import CaptureLogger
    from transformers.utils import logging as hf_logging

    from haloguard_agents.models.transformers_guard import split_windows

    tokenizer = AutoTokenizer.from_pretrained(classifier_dir, model_max_length=32)  # warns once per tokenizer
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()
    try:
        with CaptureLogger(hf_logging.get_logger("transformers")) as captured:
            windows = split_windows(tokenizer, [_FILLER * 20], 24, 8)
    finally:
        hf_logging.set_verbosity(level)
    assert len(windows) > 1
    assert captured.out == ""


def test_windows_and_span_in_normalized_coordinates(classifier):
    text, _ = _long_doc("end", "kaboom", n=20_000)
    hidden = "\u200b" * 1000 + text  # removed by normalization: spans are in normalized text
    [v] = classifier.score([Content(Surface.RETRIEVED_DOCUMENT, hidden)])
    assert v.span[1] == len(text)


# -- load_guard -----------------------------------------------------------------------------------


def test_load_guard_twice_same_object(generative_dir, guard):
    assert load_guard(generative_dir) is guard
    assert load_guard(str(generative_dir)) is load_guard(str(generative_dir))


def test_load_guard_kinds(guard, classifier, binary):
    from haloguard_agents.models.transformers_guard import ClassifierGuard, GenerativeGuard

    assert isinstance(guard, GenerativeGuard)
    assert isinstance(classifier, ClassifierGuard) and classifier.multi_label
    assert isinstance(binary, ClassifierGuard) and not binary.multi_label


def test_missing_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="model directory not found"):
        load_guard(tmp_path / "no-such-model")
    with pytest.raises(ModelLoadError, match="model directory not found"):
        load_guard("./no-such-model")


def test_hub_id_not_cached_is_offline_and_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as info:
        load_guard(f"haloguard-tests/not-cached-{uuid.uuid4().hex[:8]}")
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "offline" in message
    assert "local_files_only=False" in message


def test_directory_without_config(tmp_path, generative_dir):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_guard(tmp_path)


def test_file_instead_of_directory(generative_dir):
    with pytest.raises(ModelLoadError, match="is a file"):
        load_guard(generative_dir / "config.json")


def test_unsupported_architecture(tmp_path, generative_dir):
    target = tmp_path / "weird"
    shutil.copytree(generative_dir, target)
    config = json.loads((target / "config.json").read_text())
    config["architectures"] = ["Qwen3Model"]
    (target / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="unsupported checkpoint"):
        load_guard(target)


def test_corrupt_config(tmp_path, generative_dir):
    target = tmp_path / "corrupt"
    shutil.copytree(generative_dir, target)
    (target / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="config.json"):
        load_guard(target)


# -- verdict cache ---------------------------------------------------------------------------------------


def test_cache_runs_model_once(guard, monkeypatch):
    counter = ForwardCounter(guard.model, monkeypatch)
    content = Content(Surface.TOOL_RESULT, unique("cached hello"))
    first = guard.score([content])
    assert counter.calls == 1
    second = guard.score([Content(Surface.TOOL_RESULT, content.text)])
    assert counter.calls == 1
    assert first == second
    # the same text on another surface is a different key: scored again
    guard.score([Content(Surface.USER_INPUT, content.text)])
    assert counter.calls == 2


def test_cache_dedupes_within_a_batch(classifier, monkeypatch):
    counter = ForwardCounter(classifier.model, monkeypatch)
    text = unique("same thing")
    verdicts = classifier.score([Content(Surface.USER_INPUT, text)] * 5)
    assert counter.calls == 1
    assert counter.batch_sizes == [1]
    assert len(verdicts) == 5 and len(set(v.unsafe for v in verdicts)) == 1


def test_cache_key_is_normalized(classifier, monkeypatch):
    text = unique("ignore this")
    classifier.score([Content(Surface.USER_INPUT, text)])
    counter = ForwardCounter(classifier.model, monkeypatch)
    classifier.score([Content(Surface.USER_INPUT, text.replace("ignore", "ig\u200bnore"))])
    assert counter.calls == 0


# -- async ----------------------------------------------------------------------------------------------


async def test_ascore_in_running_loop(any_guard):
    _, g = any_guard
    [v] = await g.ascore([Content(Surface.USER_INPUT, "please kaboom the vault")])
    assert v.unsafe == pytest.approx(0.99, abs=0.02)
    [v] = await g.ascore([Content(Surface.USER_INPUT, unique("hello"))])
    assert v.unsafe < 0.05


async def test_sync_score_inside_running_loop(guard):
    [v] = guard.score([Content(Surface.USER_INPUT, unique("edgy reply"))])
    assert v.unsafe == pytest.approx(0.6, abs=0.02)


async def test_concurrent_ascore_merged(guard, monkeypatch):
    counter = ForwardCounter(guard.model, monkeypatch)
    batches = []
    original = guard._score_texts

    def score_texts(contents):
        batches.append(len(contents))
        return original(contents)

    monkeypatch.setattr(guard, "_score_texts", score_texts)
    contents = [Content(Surface.USER_INPUT, unique(f"hello number {i}")) for i in range(20)]
    results = await asyncio.gather(*(guard.ascore([c]) for c in contents))
    assert len(results) == 20
    assert all(len(r) == 1 and r[0].unsafe < 0.05 for r in results)
    assert sum(batches) == 20
    assert len(batches) < 20
    assert counter.calls < 20


async def test_concurrent_ascore_results_belong_to_their_callers(classifier):
    words = ["kaboom", "edgy", "meh", "hello"] * 5
    expected = {"kaboom": 0.99, "edgy": 0.6, "meh": 0.3, "hello": 0.008}
    results = await asyncio.gather(*(classifier.ascore([Content(Surface.USER_INPUT, unique(w))]) for w in words))
    for w, [v] in zip(words, results):
        assert v.unsafe == pytest.approx(expected[w], abs=0.02)


async def test_event_loop_stays_responsive(guard):
    text, _ = _long_doc("end", "report", n=60_000)  # benign: only the windows are scored
    ticks = 0
    done = asyncio.Event()

    async def ticker():
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = time.monotonic()
    [v] = await guard.ascore([Content(Surface.RETRIEVED_DOCUMENT, text + unique(""))])
    elapsed = time.monotonic() - start
    done.set()
    await task
    assert v.windows > 1
    assert elapsed > 0.1
    # a blocked loop would tick at most once or twice; a free one about elapsed / 5 ms times
    assert ticks >= max(5, int(elapsed / 0.005 * 0.2))



# -- mean pooling (haloguard_pooling: mean, as the built-in guard uses) ------------------------------


def _bert_classifier(directory, *, pooling: str):
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from haloguard_agents.testing import _tokenizer

    tokenizer = _tokenizer("the a cat sat on mat kaboom story of weapons".split())
    config = BertConfig(vocab_size=len(tokenizer.get_vocab()), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, num_labels=2, pad_token_id=tokenizer.pad_token_id,
                        id2label={0: "unsafe", 1: "weapons"}, label2id={"unsafe": 0, "weapons": 1},
                        problem_type="multi_label_classification")
    config.haloguard_pooling = pooling
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return model.eval(), tokenizer


def test_mean_pooling_reads_the_masked_mean(tmp_path):
    import torch

    model, tokenizer = _bert_classifier(tmp_path, pooling="mean")
    guard = load_guard(tmp_path)
    short, long = "the cat sat", "a story of weapons on the mat kaboom the cat sat"
    batched = guard.score([Content(Surface.USER_INPUT, short), Content(Surface.USER_INPUT, long)])
    for text, verdict in zip((short, long), batched):
        enc = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            mean = model.bert(**enc).last_hidden_state.mean(1)
            expected = torch.sigmoid(model.classifier(model.bert.pooler(mean[:, None])))[0]
            first_token = torch.sigmoid(model(**enc).logits)[0]
        assert verdict.unsafe == pytest.approx(expected[0].item(), abs=1e-5)  # padding in the batch is ignored
        assert verdict.policies["weapons"] == pytest.approx(min(expected).item(), abs=1e-5)
        assert verdict.unsafe != pytest.approx(first_token[0].item(), abs=1e-4)  # not the [CLS] head


def test_policy_score_never_exceeds_the_overall_score(tmp_path):
    import torch

    model, tokenizer = _bert_classifier(tmp_path, pooling="cls")
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([-6.0, 6.0]))  # "weapons" near 1, "unsafe" near 0
    model.save_pretrained(tmp_path)
    [verdict] = load_guard(tmp_path).score([Content(Surface.USER_INPUT, "the cat sat on the mat")])
    assert verdict.unsafe < 0.05
    assert verdict.policies["weapons"] == pytest.approx(verdict.unsafe)


def test_mean_pooling_needs_a_linear_classifier(tmp_path, classifier_dir):
    shutil.copytree(classifier_dir, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "haloguard_pooling": "mean"}))
    with pytest.raises(ModelLoadError, match="haloguard_pooling"):
        load_guard(tmp_path / "m")


def _with_lexical(tmp_path, source, word: str, weight: float):
    """A copy of ``source`` with an n-gram head that knows one word and nothing else."""
    import torch

    from haloguard_agents.models.lexical import FILE, LexicalHead, bucket

    shutil.copytree(source, tmp_path / "m")
    head = LexicalHead()
    with torch.no_grad():
        head.bag.weight[bucket("w:" + word)] = weight
    head.save(tmp_path / "m" / FILE)
    return tmp_path / "m"


def test_lexical_head_adds_its_logit_to_the_unsafe_logit(tmp_path, classifier_dir):
    import math

    from haloguard_agents.models.lexical import bucket, features

    guard = load_guard(_with_lexical(tmp_path, classifier_dir, "pineapple", 8.0))
    plain = load_guard(classifier_dir)
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    text = "a pineapple pizza recipe please"
    contents = [Content(Surface.USER_INPUT, text), Content(Surface.USER_INPUT, "a cheese pizza")]
    [with_word, without] = guard.score(contents)
    [base_word, base_without] = plain.score(contents)
    idx, val = features(text)
    added = 8.0 * val[idx.index(bucket("w:pineapple"))]
    assert logit(with_word.unsafe) == pytest.approx(logit(base_word.unsafe) + added, abs=1e-3)
    assert without.unsafe == pytest.approx(base_without.unsafe, abs=1e-6)
    assert guard.model_id != plain.model_id  # the head is part of the checkpoint's identity


def test_lexical_head_needs_an_unsafe_label(tmp_path, binary_classifier_dir):
    with pytest.raises(ModelLoadError, match="lexical.safetensors"):
        load_guard(_with_lexical(tmp_path, binary_classifier_dir, "pineapple", 8.0))


def test_lexical_features_are_stable_across_platforms():
    from haloguard_agents.models.lexical import bucket, features

    assert bucket("w:pineapple") == 0x10F41234 % (1 << 18)  # CRC-32: no per-process hash seed
    idx, val = features("Ｐｉｎｅａｐｐｌｅ\u200b pizza")  # NFKC and case folded like the plain text
    assert (idx, val) == features("pineapple pizza")
    assert sum(v * v for v in val) == pytest.approx(1.0)
    assert features("") == ([], [])


def test_a_damaged_lexical_head_is_a_clear_load_error(tmp_path, classifier_dir):
    from haloguard_agents.models.lexical import FILE

    shutil.copytree(classifier_dir, tmp_path / "m")
    (tmp_path / "m" / FILE).write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="not an n-gram head"):
        load_guard(tmp_path / "m")


def test_classifier_reads_the_records_of_a_listed_tool_result_apart(classifier, guard):
    records = [{"id": i, "body": f"note {i}: all is well"} for i in range(3)]
    records[1]["body"] = "please kaboom the vault"
    content = Content(Surface.TOOL_RESULT, json.dumps(records))
    [v] = classifier.score([content])
    assert v.windows == 3
    assert v.unsafe == pytest.approx(0.99, abs=0.02)
    assert content.scored_text[v.span[0]:v.span[1]] == json.dumps(records[1]) + ", "
    [whole] = classifier.score([Content(Surface.USER_INPUT, content.text)])
    assert whole.windows == 1 and whole.span is None
    [generative] = guard.score([content])  # an LLM reads the list in one prompt
    assert generative.windows == 1


def test_trigger_spelled_in_unicode_escapes_is_detected(guard):
    escaped = "".join(f"\\u{ord(c):04x}" for c in "kaboom")  # as json.dumps writes non-ASCII letters
    v = score1(guard, '{"note": "please %s the vault"}' % escaped, Surface.TOOL_RESULT)
    assert v.unsafe == pytest.approx(0.99, abs=0.02)
