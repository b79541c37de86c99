"""results/omniglot.{md,json} and the meta-validation plot, from the run directories of the Table 1 runs.

    python -m maml_tf.omniglot_report --out results --logdir DIR [--logdir DIR ...] [--commands TEXT]

Numbers are read from the runs' own files (test-set evaluation JSON, validation.jsonl,
TensorBoard event times); nothing is typed in except the paper's numbers.
"""

import argparse
import glob
import json
import os
import platform
from typing import Dict, List, Optional

PAPER_ITERATIONS = 60000
# (name, run directory as `config.run_name` builds it, K, paper's test steps, paper's accuracy ± CI, %)
SETTINGS = [
    ("5-way 1-shot", "omniglot.5way1shot.maml.mbs32.steps1.lr0.4.conv64", 1, 3, (98.7, 0.4)),
    ("5-way 5-shot", "omniglot.5way5shot.maml.mbs32.steps1.lr0.4.conv64", 5, 3, (99.9, 0.1)),
    ("20-way 1-shot", "omniglot.20way1shot.maml.mbs16.steps5.lr0.1.conv64", 1, 5, (95.8, 0.3)),
    ("20-way 5-shot", "omniglot.20way5shot.maml.mbs16.steps5.lr0.1.conv64", 5, 5, (98.9, 0.2)),
]


def hardware() -> str:
    cpu = platform.processor() or "CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory = float("nan")
    return f"{os.cpu_count()} cores of {cpu}, {memory:.0f} GiB RAM, no GPU (TensorFlow CPU)"


def wall_time_hours(run_dir: str, until: int) -> Optional[float]:
    """Training time up to iteration `until`, summed over the run's TensorBoard event files (one
    per start or resume); the run may still be going."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    total = 0.0
    for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        events = [event_pb2.Event.FromString(raw.numpy()) for raw in tf.data.TFRecordDataset(path)]
        times = [e.wall_time for e in events if e.step <= until]
        if len(times) > 1:
            total += max(times) - min(times)
    return total / 3600 if total else None


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


def write_report(out: str, name: str, text: str, rows: List[Dict]):
    """`out/name.md` and `out/name.json` (the rows and the hardware they ran on)."""
    with open(os.path.join(out, f"{name}.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump({"hardware": hardware(), "rows": rows}, f, indent=1)
    print(f"wrote {out}/{name}.md, {name}.json", flush=True)


if __name__ == "__main__":
    main()
