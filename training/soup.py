"""Average two training runs of the built-in guard into one (a weight soup).

    python training/soup.py RUN_A RUN_B --weight 0.6 --out haloguard_agents/_builtin

RUN_A and RUN_B are ``train_builtin.py --out`` directories trained from the same base encoder.
The result is ``(1 - weight) * A + weight * B``: the heads and the n-gram head are averaged,
and the LoRA adapters are stacked (rank A + rank B) so that the merged weight change is
exactly the average of the two, not an approximation. Two runs that each lean one way (one
reads user requests better, one reads what tool results plant) average into a model better
than either on both; see ``training/data/candidates/README.md``. Thresholds are left empty:
choose them with ``choose_thresholds.py --weights OUT --write``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from haloguard_agents.errors import ModelLoadError  # noqa: E402
from haloguard_agents.models import builtin, lexical  # noqa: E402

# Settings two runs must share to be averaged: the same model shape, read the same way.
SHARED = ("labels", "surface_prefix", "pooling", "layers", "max_length")


def _read(run: Path) -> tuple[dict, dict, dict[str, torch.Tensor], lexical.LexicalHead]:
    try:
        meta = json.loads((run / "builtin.json").read_text())
        manifest = json.loads((run / "MANIFEST.json").read_text())
        tensors = {k: v.float() for k, v in load_file(run / "adapter.safetensors").items()}
        head = lexical.LexicalHead.load(run / lexical.FILE)
    except (OSError, ValueError, ModelLoadError) as e:
        raise SystemExit(f"{run}: not a training run's output ({e}); pass train_builtin.py --out directories")
    return meta, manifest, tensors, head


def _check(a: dict, b: dict) -> None:
    for key in SHARED:
        if a[key] != b[key]:
            raise SystemExit(f"the runs differ in {key!r}: only runs of one model shape can be averaged")
    la, lb = a["lora"], b["lora"]
    if (la["first_layer"], la["targets"]) != (lb["first_layer"], lb["targets"]):
        raise SystemExit("the runs' LoRA adapters sit on different layers: retrain one with the other's settings")
    if a["lexical"] != b["lexical"]:
        raise SystemExit("the runs' n-gram heads differ in size or share: retrain one with the other's settings")


def average(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], w: float, scales: tuple[float, float]
            ) -> dict[str, torch.Tensor]:
    """The tensors of ``(1 - w) * a + w * b``. LoRA pairs are stacked, each run's A scaled by its share and its
    own alpha / rank, so that the result's ``B @ A`` (used at scale 1) is the weighted sum of the runs' changes."""
    sa, sb = scales
    out = {}
    for key, ta in a.items():
        tb = b[key]
        if key.endswith(".lora_A"):
            out[key] = torch.cat([(1 - w) * sa * ta, w * sb * tb])
        elif key.endswith(".lora_B"):
            out[key] = torch.cat([ta, tb], dim=1)
        else:
            out[key] = (1 - w) * ta + w * tb
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_a", type=Path)
    ap.add_argument("run_b", type=Path)
    ap.add_argument("--weight", type=float, required=True, help="B's share, in (0, 1)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if not 0 < args.weight < 1:
        ap.error("--weight must be between 0 and 1 (B's share)")
    w = args.weight
    (ma, fa, ta, ha), (mb, fb, tb, hb) = _read(args.run_a), _read(args.run_b)
    _check(ma, mb)
    if set(ta) != set(tb):
        raise SystemExit("the runs' adapters hold different tensors: they are not runs of one model")

    # The result's LoRA scale is 1 (alpha = rank): each run's own alpha / rank goes into its A rows.
    scales = (ma["lora"]["alpha"] / ma["lora"]["rank"], mb["lora"]["alpha"] / mb["lora"]["rank"])
    tensors = average(ta, tb, w, scales)
    head = lexical.LexicalHead(buckets=ha.buckets)
    with torch.no_grad():
        for p, pa, pb in zip(head.parameters(), ha.parameters(), hb.parameters()):
            p.copy_((1 - w) * pa + w * pb)
    rank = ma["lora"]["rank"] + mb["lora"]["rank"]
    meta = {
        **{k: ma[k] for k in ("version", *SHARED, "lexical")},
        "lora": {**ma["lora"], "rank": rank, "alpha": rank},
        # Each run's calibration, averaged: the soup's logits sit between the two runs' logits.
        "temperature": {k: (1 - w) * ma["temperature"][k] + w * mb["temperature"][k] for k in ma["temperature"]},
        "thresholds": {},
        "soup": {"weight": w, "runs": [{k: m[k] for k in ("holdout", "training", "trained_at", "soup") if k in m}
                                       for m in (ma, mb)]},
    }
    manifest = {
        "soup": [{"weight": 1 - w, **fa}, {"weight": w, **fb}],
        "sources": fb["sources"] + [s for s in fa["sources"] if s not in fb["sources"]],
        "evaluate_use_files_used": sorted({*fa["evaluate_use_files_used"], *fb["evaluate_use_files_used"]}),
    }
    builtin.save_weights(args.out, tensors, head.eval(), meta, manifest)
    print(f"wrote {args.out}: {1 - w:g} x {args.run_a} + {w:g} x {args.run_b}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
