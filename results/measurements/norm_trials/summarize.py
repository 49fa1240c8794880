"""The trials' table (README.md here) from each trial's train.json, curve.csv and val.json
(sweep.sh), and the choice by the rule written in README.md: per cell the kind with the
highest accuracy with each query on its own; the kind that wins most cells (a tie of cells:
the higher mean score over the three)."""

import json
import sys
from pathlib import Path

here = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
KINDS = ("batch", "meta", "tasknorm-i")
rows = ["| cell | norm | validation, each query on its own (600 tasks) | validation, queries "
        "together | iterations | training CPU s | machine |",
        "| --- | --- | --- | --- | --- | --- | --- |"]
scores = {}
for run in sorted(p for p in here.iterdir() if (p / "val.json").exists()):
    cell, norm = next((run.name[:-len(k) - 1], k) for k in KINDS if run.name.endswith("-" + k))
    train, val = (json.loads((run / name).read_text()) for name in ("train.json", "val.json"))
    alone = val["query_modes"]["support"]
    scores.setdefault(cell, {})[norm] = 100 * alone["accuracy"]
    machines = sorted({s["machine"]["kind"] for s in train["segments"]})
    cpu = sum(s["cpu_s"] for s in train["segments"])
    rows.append(f"| {cell} | {norm} | {100 * alone['accuracy']:.2f} ± {100 * alone['ci95']:.2f} | "
                f"{100 * val['accuracy']:.2f} ± {100 * val['ci95']:.2f} | {train['iterations']} | "
                f"{cpu:.0f} | {', '.join(machines)} |")
print("\n".join(rows))
winners = {cell: max(kinds, key=kinds.get) for cell, kinds in scores.items()
           if len(kinds) == len(KINDS)}
if len(winners) == len(scores) == 3:
    wins = {k: sum(w == k for w in winners.values()) for k in KINDS}
    mean = {k: sum(scores[c][k] for c in scores) / 3 for k in KINDS}
    chosen = max(KINDS, key=lambda k: (wins[k], mean[k]))
    print("\nPer cell, the kind with the most accuracy with each query on its own: "
          + ", ".join(f"{cell} {kind}" for cell, kind in winners.items())
          + f". Chosen by the rule: **{chosen}** (cells won: "
          + ", ".join(f"{k} {wins[k]}" for k in KINDS) + "; mean over the cells: "
          + ", ".join(f"{k} {mean[k]:.2f}" for k in KINDS) + ").")
else:
    print(f"\n(trials finished: {sum(len(k) for k in scores.values())} of 9; no choice yet)")
