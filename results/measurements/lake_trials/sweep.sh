#!/usr/bin/env bash
# Short trials for a strong model of Lake's protocol (issue 25), judged on validation only:
# 20-way 1-shot on the lake_alphabets split (validation on five whole background alphabets),
# each method's laptop preset, seed 0, with validation tasks as Lake's runs are (every class
# from one alphabet, unrotated; 100 fixed tasks during training). The trials vary the method
# and the training tasks: across alphabets, rotated (the paper's), within one alphabet,
# rotated, or within one alphabet, unrotated (as the runs). Each model then adapts 10 steps on
# 600 within-alphabet validation tasks (evaluate --part val gives the accuracy after every
# step), which also chooses the test steps. Neither the test tasks nor Lake's runs are used.
# Usage: sweep.sh DATA LAKE_ALPHABETS_SPLIT_FILE OUT [METHOD...]
#   (writes OUT/<method>-<tasks>/{train.json,curve.csv,val.json,...}; default methods maml maml++)
set -euo pipefail
data=$1 split=$2 out=$3
shift 3
methods="${*:-maml maml++}"
here=$(cd "$(dirname "$0")" && pwd)
for method in $methods; do
    for tasks in across within within_unrotated; do
        run="$out/$method-$tasks"
        [ -f "$run/val.json" ] && continue
        python -m maml train --method "$method" --preset laptop --n_way 20 --k_spt 1 \
            --split_name lake_alphabets --config "$here/$tasks.yaml" --data "$data" \
            --split-file "$split" --out-dir "$run" --resume
        python -m maml evaluate --model "$run/model.npz" --glob_update_step_test 10 \
            --data "$data" --split-file "$split" --part val --num-tasks 600 --out "$run/val.json"
    done
done
