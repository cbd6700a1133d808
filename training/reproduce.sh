#!/usr/bin/env bash
# Reproduces the shipped built-in guard: two runs of one recipe, averaged, then the default thresholds.
#
#   training/reproduce.sh ../shared/data/train ../shared/data/dev [OUT]
#
# The second run adds --bare-instructions (agent tasks planted whole in tool results are injections);
# the soup takes 0.6 of it. The dev files are read for two things only: training rows equal to one of
# their texts are dropped, and the thresholds are chosen on them. About 100 minutes on 2 CPU cores;
# each run resumes where it stopped (its checkpoints are under .haloguard/train/).
set -euo pipefail
shared=${1:?usage: training/reproduce.sh SHARED_TRAIN_DIR DEV_DIR [OUT]}
dev=${2:?usage: training/reproduce.sh SHARED_TRAIN_DIR DEV_DIR [OUT]}
out=${3:-haloguard_agents/_builtin}
recipe=(--shared-train "$shared" --seed 1 --exclude "$dev"/*.jsonl
        --extra-data training/data/candidates/agent_balance --extra-data training/data/candidates/shortcut_balance
        --extra-data training/data/candidates/phrase_balance)
python training/train_builtin.py "${recipe[@]}" --work .haloguard/train/user --out .haloguard/runs/user
python training/train_builtin.py "${recipe[@]}" --bare-instructions --work .haloguard/train/planted \
    --out .haloguard/runs/planted
python training/soup.py .haloguard/runs/user .haloguard/runs/planted --weight 0.6 --out "$out"
python training/choose_thresholds.py --dev "$dev" --weights "$out" --write
