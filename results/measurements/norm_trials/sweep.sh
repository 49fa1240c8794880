#!/usr/bin/env bash
# Short trials of the normalisations (settings.NORMS; issue 43), judged on validation only, each
# query on its own. Three one-shot cells, each the configuration of its headline row (MAML++'s
# laptop preset; Lake's with best_lake's validation tasks: within one alphabet, unrotated), seed 0,
# three kinds: batch (today's), meta (MetaBN in training) and tasknorm-i. Every trial gets about
# the same training CPU time: its iterations are that budget over the kind's CPU time per
# iteration, measured before the trials (README.md). Each model (the one its run kept on its 100
# validation tasks) then adapts on 600 validation tasks; `evaluate --part val` gives the accuracy
# with the queries together and each query on its own (support-set statistics). The test tasks
# and Lake's runs are not used.
# Usage: sweep.sh DATA SPLITS_DIR OUT   (OUT/<cell>-<norm>/{train.json,curve.csv,val.json};
# several sweeps may run side by side: each claims a trial by making OUT/<trial>.claim)
set -euo pipefail
data=$1 splits=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
# trial: cell  split  ways  iterations (batch meta tasknorm-i)  val_every  extra settings
while read -r cell split ways iters_batch iters_meta iters_tasknorm val_every extra; do
    for norm in batch meta tasknorm-i; do
        case $norm in batch) iters=$iters_batch ;; meta) iters=$iters_meta ;; *) iters=$iters_tasknorm ;; esac
        run="$out/$cell-$norm"
        [ -f "$run/val.json" ] && continue
        mkdir "$run.claim" 2>/dev/null || continue
        settings="$out/$cell-$norm.yaml"
        printf 'norm: %s\n%s' "$norm" "$(cat "$here/$extra")" > "$settings"
        python -m maml train --method maml++ --preset laptop --n_way "$ways" --k_spt 1 \
            --split_name "$split" --config "$settings" --epochs "$iters" --val_every "$val_every" \
            --val_tasks 100 --checkpoint_every 500 --data "$data" \
            --split-file "$splits/$split.json" --out-dir "$run" --resume
        python -m maml evaluate --model "$run/model.npz" --data "$data" \
            --split-file "$splits/$split.json" --part val --num-tasks 600 --out "$run/val.json"
        rm -f "$run/model.npz" "$run/checkpoint.npz"
    done
done < "$here/trials.txt"
