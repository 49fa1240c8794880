"""The trials' table (README.md here) from their train.json, curve.csv and val.json (sweep.sh):
within-alphabet validation accuracy after every test step, the training curve's validation
accuracy against training CPU time, and where each ran."""

import csv
import json
import sys
from pathlib import Path

here = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
rows = ["| method | training tasks | validation accuracy % after 1, 2, 3, 5, 10 test steps "
        "(600 within-alphabet tasks) | +- 95% (10 steps) | curve: best validation % (100 "
        "tasks) | training CPU s | machine |", "| --- | --- | --- | --- | --- | --- | --- |"]
for run in sorted(p for p in here.iterdir() if (p / "val.json").exists()):
    train, val = (json.loads((run / name).read_text()) for name in ("train.json", "val.json"))
    method, _, tasks = run.name.partition("-")
    steps = " / ".join(f"{100 * val['per_step_accuracy'][s]:.1f}" for s in (1, 2, 3, 5, 10))
    with open(run / "curve.csv") as handle:
        best = max(float(r["val_accuracy"]) for r in csv.DictReader(handle) if r["val_accuracy"])
    machines = sorted({s["machine"]["kind"] for s in train["segments"]})
    cpu = sum(s["cpu_s"] for s in train["segments"])
    rows.append(f"| {method} | {tasks.replace('_', ', ')} | {steps} | {100 * val['ci95']:.2f} | "
                f"{100 * best:.1f} | {cpu:.0f} | {', '.join(machines)} |")
sys.stdout.write("\n".join(rows) + "\n")
