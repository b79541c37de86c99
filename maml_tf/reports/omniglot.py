"""results/omniglot.{md,json} and the meta-validation plot, from the run directories of the Table 1 runs.

    python -m maml_tf.reports.omniglot --out results --logdir DIR [--logdir DIR ...] [--commands TEXT]

Numbers are read from the runs' own files (test-set evaluation JSON, validation.jsonl,
TensorBoard event times); nothing is typed in except the paper's numbers.
"""

import argparse
import glob
import json
import os
from typing import Dict, List, Optional

from maml_tf.reports.writer import hardware, wall_time_hours, write_report

PAPER_ITERATIONS = 60000
# (name, run directory as `config.run_name` builds it, K, paper's test steps, paper's accuracy ± CI, %)
SETTINGS = [
    ("5-way 1-shot", "omniglot.5way1shot.maml.mbs32.steps1.lr0.4.conv64", 1, 3, (98.7, 0.4)),
    ("5-way 5-shot", "omniglot.5way5shot.maml.mbs32.steps1.lr0.4.conv64", 5, 3, (99.9, 0.1)),
    ("20-way 1-shot", "omniglot.20way1shot.maml.mbs16.steps5.lr0.1.conv64", 1, 5, (95.8, 0.3)),
    ("20-way 5-shot", "omniglot.20way5shot.maml.mbs16.steps5.lr0.1.conv64", 5, 5, (98.9, 0.2)),
]


def latest_test_eval(run_dir: str, shots: int) -> Optional[Dict]:
    """The evaluation JSON of the newest checkpoint evaluated on the meta-test split with K = shots."""
    paths = glob.glob(os.path.join(run_dir, f"eval_test_shots{shots}_*_iter*.json"))
    if not paths:
        return None
    with open(max(paths, key=lambda p: int(p.rsplit("_iter", 1)[1][:-5]))) as f:
        return json.load(f)


def validation_rows(run_dir: str) -> List[Dict]:
    path = os.path.join(run_dir, "validation.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def collect(logdirs: List[str]) -> List[Dict]:
    rows = []
    for name, run, shots, steps, paper in SETTINGS:
        run_dir = next((os.path.join(d, run) for d in logdirs if os.path.isdir(os.path.join(d, run))), None)
        row = {"setting": name, "run": run, "paper": {"mean": paper[0], "ci95": paper[1]},
               "paper_steps": steps, "status": "not run yet"}
        evaluation = latest_test_eval(run_dir, shots) if run_dir else None
        if evaluation:
            acc = evaluation["metrics"]["accuracy"]
            row.update(status="cut short" if evaluation["iteration"] < PAPER_ITERATIONS else "complete",
                       run_dir=run_dir, iterations=evaluation["iteration"],
                       wall_time_hours=wall_time_hours(run_dir, evaluation["iteration"]),
                       num_tasks=evaluation["num_tasks"],
                       accuracy={"mean": 100 * acc["mean"][steps], "ci95": 100 * acc["ci95"][steps]},
                       accuracy_by_step={"mean": [100 * m for m in acc["mean"]],
                                         "ci95": [100 * c for c in acc["ci95"]]})
        if run_dir:
            row["validation"] = validation_rows(run_dir)
        rows.append(row)
    return rows


def markdown(rows: List[Dict], commands: str, notes: str = "") -> str:
    lines = ["# Omniglot (Table 1 of Finn et al. 2017), MAML, meta-test split", "",
             f"Hardware: {hardware()}. Accuracy in % on the 423 meta-test characters (random split, "
             "as the original), mean ± 95% CI over the evaluated tasks, after the paper's number of "
             "test-time steps (5-way: 3, 20-way: 5).", "",
             "| setting | paper | this code | test steps | tasks | iterations trained | wall time | status |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        paper = f"{r['paper']['mean']} ± {r['paper']['ci95']}"
        if r["status"] == "not run yet":
            lines.append(f"| {r['setting']} | {paper} | not run yet | {r['paper_steps']} | | | | not run yet |")
            continue
        hours = f"{r['wall_time_hours']:.2f} h" if r.get("wall_time_hours") else "?"
        status = (f"**cut short** at {r['iterations']:,} of {PAPER_ITERATIONS:,} iterations"
                  if r["status"] == "cut short" else "complete")
        lines.append(f"| {r['setting']} | {paper} | {r['accuracy']['mean']:.1f} ± "
                     f"{r['accuracy']['ci95']:.1f} | {r['paper_steps']} | {r['num_tasks']} | "
                     f"{r['iterations']:,} | {hours} | {status} |")
    lines += ["", "Accuracy after each test-time step (0 = before adaptation):", ""]
    for r in rows:
        if "accuracy_by_step" in r:
            steps = ", ".join(f"{m:.1f}" for m in r["accuracy_by_step"]["mean"])
            lines.append(f"- {r['setting']}: {steps}")
    lines += ["", "![meta-validation accuracy](omniglot_val.png)", "",
              "Meta-validation accuracy during training (100 fixed tasks of the 100 validation "
              "characters) is in `omniglot_val.png`; all numbers are in `omniglot.json`.", ""]
    if commands:
        lines += ["Commands:", "", "```", commands.strip(), "```", ""]
    if notes:
        lines += [notes.strip(), ""]
    return "\n".join(lines)


def plot(rows: List[Dict], path: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        history = r.get("validation") or []
        if not history:
            continue
        its = [h["iteration"] for h in history]
        step = min(r["paper_steps"], len(history[0]["accuracy"]) - 1)
        line, = ax.plot(its, [100 * h["accuracy"][step] for h in history],
                        label=f"{r['setting']}, after {step} steps")
        ax.plot(its, [100 * h["accuracy"][0] for h in history], "--", color=line.get_color(),
                alpha=0.6, label=f"{r['setting']}, before adaptation")
        ax.axhline(r["paper"]["mean"], color=line.get_color(), lw=0.8, ls=":")
    ax.set_xlabel("meta-training iteration")
    ax.set_ylabel("meta-validation accuracy (%)")
    ax.set_title("Omniglot MAML (dotted: the paper's test accuracy)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results")
    parser.add_argument("--logdir", action="append", required=True, help="parent of run directories")
    parser.add_argument("--commands", default="", help="the exact commands, quoted in the report")
    parser.add_argument("--notes", default="", help="how the runs were made, quoted at the end")
    args = parser.parse_args()
    rows = collect(args.logdir)
    os.makedirs(args.out, exist_ok=True)
    plot(rows, os.path.join(args.out, "omniglot_val.png"))
    write_report(args.out, "omniglot", markdown(rows, args.commands, args.notes), rows)


if __name__ == "__main__":
    main()
