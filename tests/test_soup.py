"""Averaging two training runs (training/soup.py) on the shipped weights' real files."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from haloguard_agents.models import builtin, lexical
from training import soup


def _merged(run) -> dict[str, torch.Tensor]:
    """What ``builtin.assemble`` adds to each base weight, and every head tensor as stored."""
    meta = json.loads((run / "builtin.json").read_text())
    tensors = {k: v.float() for k, v in load_file(run / "adapter.safetensors").items()}
    out = {k: v for k, v in tensors.items() if not k.endswith((".lora_A", ".lora_B"))}
    out.update(builtin.lora_deltas(tensors, meta["lora"]))
    lex = load_file(run / lexical.FILE)
    out.update({f"lexical.{k}": v.float() for k, v in lex.items()})
    return out


def _other_run(tmp_path):
    """The shipped run with every trained tensor changed: another run of the same model."""
    run = tmp_path / "b"
    shutil.copytree(builtin.WEIGHTS_DIR, run)
    tensors = {k: v.float() for k, v in load_file(run / "adapter.safetensors").items()}
    gen = torch.Generator().manual_seed(0)
    tensors = {k: v + v.std() * torch.randn(v.shape, generator=gen) for k, v in tensors.items()}
    head = lexical.LexicalHead.load(run / lexical.FILE)
    with torch.no_grad():
        head.bias.add_(1.0)
    meta = json.loads((run / "builtin.json").read_text())
    meta["temperature"] = {k: v + 0.5 for k, v in meta["temperature"].items()}
    builtin.save_weights(run, tensors, head, meta, json.loads((run / "MANIFEST.json").read_text()))
    return run


def test_a_soup_is_the_weighted_average_of_the_merged_runs(tmp_path):
    a, b, out = builtin.WEIGHTS_DIR, _other_run(tmp_path), tmp_path / "soup"
    assert soup.main([str(a), str(b), "--weight", "0.6", "--out", str(out)]) == 0
    ma, mb, ms = _merged(a), _merged(b), _merged(out)
    assert set(ms) == set(ma)
    for key in ms:
        expected = 0.4 * ma[key] + 0.6 * mb[key]
        assert (ms[key] - expected).norm() <= 0.01 * expected.norm(), key  # fp16 storage
    meta = json.loads((out / "builtin.json").read_text())
    ra, rb = (json.loads((r / "builtin.json").read_text()) for r in (a, b))
    assert meta["lora"]["rank"] == ra["lora"]["rank"] + rb["lora"]["rank"]
    assert meta["temperature"]["overall"] == pytest.approx(0.4 * ra["temperature"]["overall"]
                                                           + 0.6 * rb["temperature"]["overall"])
    assert meta["thresholds"] == {}  # chosen afterwards on the dev sets
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert [r["weight"] for r in manifest["soup"]] == pytest.approx([0.4, 0.6])
    assert manifest["evaluate_use_files_used"] == [] and all(s["license"] for s in manifest["sources"])


def test_only_runs_of_one_model_are_averaged(tmp_path):
    b = tmp_path / "b"
    shutil.copytree(builtin.WEIGHTS_DIR, b)
    meta = json.loads((b / "builtin.json").read_text())
    meta["layers"] -= 1
    (b / "builtin.json").write_text(json.dumps(meta))

    def run(other, weight="0.5"):
        return soup.main([str(builtin.WEIGHTS_DIR), str(other), "--weight", weight, "--out", str(tmp_path / "o")])

    with pytest.raises(SystemExit, match="'layers'"):
        run(b)
    with pytest.raises(SystemExit, match="not a training run's output"):
        run(tmp_path / "missing")
    with pytest.raises(SystemExit):
        run(b, "1.5")
    assert not (tmp_path / "o").exists()  # nothing half-written
