"""The sweep's table (README.md here) from its runs' train.json and val.json (sweep.sh)."""

import json
import sys
from pathlib import Path

here = Path(__file__).parent
rows = ["| cell | inner rate | validation accuracy % after 1, 2, ..., 10 test steps (600 tasks) "
        "| +- 95% (10 steps) | CPU s | machine |", "| --- | --- | --- | --- | --- | --- |"]
for run in sorted(p for p in here.iterdir() if (p / "val.json").exists()):
    train, val = (json.loads((run / name).read_text()) for name in ("train.json", "val.json"))
    steps = " ".join(f"{100 * a:.1f}" for a in val["per_step_accuracy"][1:])
    machines = sorted({s["machine"]["kind"] for s in train["segments"]})
    cpu = sum(s["cpu_s"] for s in train["segments"])
    rows.append(f"| {val['n_way']}way{val['k_shot']}shot | {train['settings']['inner_lr']} | "
                f"{steps} | {100 * val['ci95']:.2f} | {cpu:.0f} | {', '.join(machines)} |")
sys.stdout.write("\n".join(rows) + "\n")
