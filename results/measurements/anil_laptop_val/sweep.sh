#!/usr/bin/env bash
# ANIL's laptop inner rate, chosen on validation (issue 26): the anil family's laptop preset
# with each candidate rate, one training inner step, seed 0, on the finn split; each model then
# adapts 10 steps on 600 validation tasks (evaluate --part val gives the accuracy after every
# step), so one run per rate also chooses the test steps. The test tasks are not used.
# Usage: sweep.sh DATA SPLIT_FILE OUT   (writes OUT/<cell>-lr<rate>/{train.json,val.json,...})
set -euo pipefail
data=$1 split=$2 out=$3
for cell in "5 1" "20 1"; do
    set -- $cell
    for lr in 0.4 2.0 10.0; do
        run="$out/${1}way${2}shot-lr$lr"
        python -m maml train --method anil --preset laptop --n_way "$1" --k_spt "$2" \
            --glob_base_lr "$lr" --data "$data" --split-file "$split" --out-dir "$run"
        python -m maml evaluate --method anil --preset laptop --n_way "$1" --k_spt "$2" \
            --glob_base_lr "$lr" --glob_update_step_test 10 --data "$data" --split-file "$split" \
            --model "$run/model.npz" --part val --num-tasks 600 --out "$run/val.json"
    done
done
