"""results/transfer.{md,json} and one plot per dataset: MAML vs the pretrained baselines vs from-scratch on the same test tasks.

    python -m maml_tf.reports.transfer --out results --pretrained DATASET=DIR --scratch DATASET=DIR [--commands TEXT]
    python -m maml_tf.reports.transfer --choose DIR --method all --ways 5 --shots 1   # prints the val-chosen flags

Every baseline number is read from an evaluation file in its run directory; the step size, batch
norm mode and step count of each baseline are the ones with the best mean accuracy on the
validation tasks (`eval_val_*` files); MAML's rows come from results/<dataset>.json.
"""

import glob
import json
import os
import re
from typing import Dict, List, Optional

from maml_tf.errors import OneLineParser
from maml_tf.experiment.recorded import at_step, nearest, steps_of
from maml_tf.reports.writer import out_dir, write_report

SETTINGS = {"omniglot": [(5, 1), (5, 5), (20, 1), (20, 5)], "miniimagenet": [(5, 1), (5, 5)]}
METHODS = {"all": "pretrained, fine-tune all (SGD)", "head": "pretrained, head only",
           "nearest": "pretrained, nearest neighbour", "cosine": "pretrained, cosine classifier"}
PUBLISHED = {  # (dataset, ways, shots) -> [(what, mean, ci95 or None)]
    ("omniglot", 5, 1): [("MAML paper", 98.7, 0.4)], ("omniglot", 5, 5): [("MAML paper", 99.9, 0.1)],
    ("omniglot", 20, 1): [("MAML paper", 95.8, 0.3)], ("omniglot", 20, 5): [("MAML paper", 98.9, 0.2)],
    ("miniimagenet", 5, 1): [("MAML paper", 48.70, 1.84), ("MAML paper: fine-tuning baseline", 28.86, 0.54),
                             ("MAML paper: nearest neighbour", 41.08, 0.70),
                             ("Chen et al. 2019 Conv-4 Baseline", 42.11, None),
                             ("Chen et al. 2019 Conv-4 Baseline++", 48.24, None)],
    ("miniimagenet", 5, 5): [("MAML paper", 63.11, 0.92), ("MAML paper: fine-tuning baseline", 49.79, 0.79),
                             ("MAML paper: nearest neighbour", 51.04, 0.65),
                             ("Chen et al. 2019 Conv-4 Baseline", 62.53, None),
                             ("Chen et al. 2019 Conv-4 Baseline++", 66.43, None)],
}
NAME = re.compile(r"eval_(val|test)_shots(\d+)_lr([^_]+)_iter(\d+)_(\d+)way_(\w+?)_bn(batch|moving)\.json$")


def evaluations(run_dir: str, split: str, method: str, ways: int, shots: int) -> List[Dict]:
    """The evaluation JSONs of one baseline and setting in a run directory."""
    out = []
    for path in glob.glob(os.path.join(run_dir, f"eval_{split}_shots{shots}_*_{ways}way_{method}_bn*.json")):
        m = NAME.search(os.path.basename(path))
        if m and m.group(6) == method:
            with open(path) as f:
                out.append({**json.load(f), "file": os.path.basename(path)})
    return out


def choose(run_dir: str, method: str, ways: int, shots: int) -> Optional[Dict]:
    """The validation evaluation (and step) with the best mean accuracy, among those of the newest
    checkpoint evaluated; None if none ran."""
    best, found = None, evaluations(run_dir, "val", method, ways, shots)
    newest = max((ev["iteration"] for ev in found), default=None)
    for ev in (ev for ev in found if ev["iteration"] == newest):
        acc = ev["metrics"]["accuracy"]["mean"]
        i = max(range(len(acc)), key=lambda j: acc[j])
        if best is None or acc[i] > best["val_accuracy"]:  # the step by value, not position
            best = {"inner_lr": ev["inner_lr"], "finetune_bn": ev["finetune_bn"],
                    "step": steps_of(ev, len(acc))[i], "val_accuracy": acc[i],
                    "val_tasks": ev["num_tasks"], "file": ev["file"], "iteration": ev["iteration"]}
    return best


def baseline_row(run_dir: str, method: str, ways: int, shots: int, label: str) -> Dict:
    """Test accuracy at the validation-chosen settings and step, with its curve."""
    row = {"method": label, "run_dir": run_dir, "status": "not run yet"}
    chosen = choose(run_dir, method, ways, shots) if run_dir else None
    if not chosen:
        return row
    row.update(status="no test evaluation at the chosen settings", chosen=chosen)
    for ev in evaluations(run_dir, "test", method, ways, shots):
        if (ev["inner_lr"], ev["finetune_bn"], ev["iteration"]) == \
                (chosen["inner_lr"], chosen["finetune_bn"], chosen["iteration"]):
            acc = ev["metrics"]["accuracy"]
            steps = steps_of(ev, len(acc["mean"]))
            row.update(status="measured", file=ev["file"], iteration=ev["iteration"],
                       num_tasks=ev["num_tasks"], step=nearest(steps, chosen["step"]),
                       accuracy={"mean": 100 * at_step(acc["mean"], steps, chosen["step"]),
                                 "ci95": 100 * at_step(acc["ci95"], steps, chosen["step"])},
                       accuracy_by_step=[100 * a for a in acc["mean"]], steps=steps)
    return row


def maml_row(dataset: str, ways: int, shots: int) -> Dict:
    """This project's MAML from results/<dataset>.json (its best run, with its iterations): the
    best-validation model where it was tested, else the newest checkpoint."""
    path = os.path.join("results", f"{dataset}.json")
    row = {"method": "MAML (this project)", "status": "not measured here"}
    if not os.path.exists(path):
        return row
    with open(path) as f:
        rows = json.load(f)["rows"]
    name = f"{ways}-way {shots}-shot"
    found = next((r for r in rows if r.get("setting") in (name, name + ", MAML")
                  and ("accuracy" in r or "best" in r or "newest" in r)), None)
    if found is None:
        return row
    row.update(status=found["status"], run=found["run"], step=found["paper_steps"])
    if "accuracy" in found:  # the report format before best-validation models
        return dict(row, iterations=found["iterations"], accuracy=found["accuracy"],
                    accuracy_by_step=found["accuracy_by_step"]["mean"])
    model = "best" if "best" in found else "newest"
    result = found[model]
    return dict(row, iterations=result["iteration"], model=model,
                accuracy={"mean": result["mean"], "ci95": result["ci95"]},
                accuracy_by_step=result["by_step"]["mean"],
                steps=result["by_step"].get("steps"))


RECORDED = "as recorded earlier (run not kept)"


def earlier_rows(path: Optional[str]) -> Dict:
    """{(dataset, ways, shots, method label): row} of an earlier transfer.json's measured baseline
    rows, each with the machine it ran on ({} without one)."""
    try:
        with open(path) as f:
            earlier = json.load(f)
    except (TypeError, OSError, ValueError):
        return {}
    return {(r["dataset"], r["ways"], r["shots"], m["method"]):
            {**m, "hardware": m.get("hardware") or earlier.get("hardware")}
            for r in earlier.get("rows", []) for m in r["methods"]
            if m.get("status") in ("measured", RECORDED) and "chosen" in m}


def _or_earlier(row: Dict, earlier: Dict, key) -> Dict:
    """`row`, or the earlier report's row of the same baseline and setting where this one's
    run directory holds no evaluation (its runs were not kept in the run store)."""
    if "accuracy" in row or key not in earlier:
        return row
    return dict(earlier[key], status=RECORDED)


def collect(pretrained: Dict[str, str], scratch: Dict[str, str], earlier: Dict = None) -> List[Dict]:
    rows, earlier = [], earlier or {}
    for dataset, settings in SETTINGS.items():
        for ways, shots in settings:
            methods = [maml_row(dataset, ways, shots)]
            methods += [baseline_row(pretrained.get(dataset), m, ways, shots, label)
                        for m, label in METHODS.items()]
            methods.append(baseline_row(scratch.get(dataset), "all", ways, shots,
                                        "from scratch, fine-tune all (SGD)"))
            methods = [methods[0]] + [_or_earlier(m, earlier, (dataset, ways, shots, m["method"]))
                                      for m in methods[1:]]
            rows.append({"dataset": dataset, "ways": ways, "shots": shots, "methods": methods,
                         "published": [{"what": w, "mean": m, "ci95": c}
                                       for w, m, c in PUBLISHED[(dataset, ways, shots)]]})
    return rows


def _cell(m: Dict) -> str:
    if "accuracy" not in m:
        return m["status"]
    a = m["accuracy"]
    return f"{a['mean']:.2f} ± {a['ci95']:.2f}"


def _how(m: Dict) -> str:
    if "chosen" in m:
        c = m["chosen"]
        lr = "" if "nearest" in m["method"] else f"lr {c['inner_lr']:g}, "
        return (f"{lr}bn {c['finetune_bn']}, step {c['step']} (val {100 * c['val_accuracy']:.1f}% "
                f"on {c['val_tasks']} tasks); checkpoint {c['iteration']}"
                + (f"; {RECORDED}" if m["status"] == RECORDED else ""))
    if "iterations" in m:
        model = {"best": "best-validation model, ", "newest": "newest checkpoint, "}.get(m.get("model"), "")
        return f"{m['run']}, {model}{m['iterations']} iterations ({m['status']}), step {m['step']}"
    return ""


def table(rows: List[Dict]) -> str:
    lines = []
    for r in rows:
        lines += [f"\n### {r['dataset']} {r['ways']}-way {r['shots']}-shot (600 test tasks, --eval_seed=1234)\n",
                  "| initial weights / test-time method | accuracy % ± 95% CI | how chosen |", "|---|---|---|"]
        lines += [f"| {m['method']} | {_cell(m)} | {_how(m)} |" for m in r["methods"]]
        lines += [f"| *published:* {p['what']} | {p['mean']:.2f}" + (f" ± {p['ci95']:.2f}" if p["ci95"] else "")
                  + " | |" for p in r["published"]]
    return "\n".join(lines)


def plot(rows: List[Dict], dataset: str, out: str) -> Optional[str]:
    """Accuracy against fine-tuning steps: MAML vs pretrained (all, head) vs scratch, one panel per setting."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [r for r in rows if r["dataset"] == dataset]
    curves = [[m for m in r["methods"] if m.get("accuracy_by_step")] for r in mine]
    if not any(curves):
        return None
    fig, axes = plt.subplots(1, len(mine), figsize=(4 * len(mine), 3.4), squeeze=False)
    for ax, r, ms in zip(axes[0], mine, curves):
        for m in ms:
            acc = m["accuracy_by_step"]
            # One colour per method in every panel, whichever rows a panel lacks.
            color = f"C{[x['method'] for x in r['methods']].index(m['method'])}"
            if len(acc) == 1:  # nearest neighbour: no steps, a level
                ax.axhline(acc[0], linestyle="--", color="grey", label=m["method"])
            else:
                ax.plot(m.get("steps") or range(len(acc)), acc, marker=".", color=color,
                        label=m["method"])
        ax.set(title=f"{r['ways']}-way {r['shots']}-shot", xlabel="gradient steps on the support set",
               ylabel="test accuracy %")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(out, f"transfer_{dataset}.png")
    fig.savefig(path, dpi=110)
    return path


HEADER = """# Meta-learning vs transfer learning: MAML beside pretrained-then-fine-tuned baselines

Every row uses the dataset's MAML network, the same splits and the same 600 test tasks
(`--eval_seed=1234`), evaluated by the same code (`maml_tf/experiment/evaluate.py`,
`evaluate_learner`); rows differ only in where the initial weights came from and what is
adapted at test time. Generated by `python -m maml_tf.reports.transfer` from the run
directories; MAML's rows are read from results/<dataset>.json.

- **Pretrained**: supervised training of the network (SGD, momentum 0.9, step 0.1, batch 64, no
  augmentation) with a Glorot-initialised classifier over all meta-train classes: Omniglot's
  1,100 meta-train characters x 4 rotations as 4,400 classes (as Vinyals et al.), miniImageNet's
  64 classes. The checkpoint used is the one with the best fine-tuned accuracy on validation
  tasks (`best/`, `validation.jsonl`).
- **At test time** the classifier is replaced by a zeroed N-way head (step 0 is chance), then:
  *fine-tune all* (SGD on every weight except the batch-norm offsets, MAML's inner loop and
  loss), *head only* (features frozen), *nearest neighbour* (1-NN, squared Euclidean distance
  of the pooled features), *cosine classifier* (weights initialised at the normalised class
  means of the support features, logits 10 x cosine, SGD on the weights; unlike Chen et al.'s
  Baseline++ the pretraining used a linear classifier).
- **From scratch**: the same fine-tuning from MAML's random initialisation (`--baseline=scratch`).
- **Chosen on validation**: for each baseline and setting, the step size, the batch-norm mode
  (`batch`: the task's batch statistics, as MAML; `moving`: the pretrained moving statistics) and
  the number of steps (0..10) with the best mean accuracy on the meta-validation tasks; the test
  accuracy is read at that step.
"""


def main():
    p = OneLineParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results")
    p.add_argument("--pretrained", action="append", default=[], help="DATASET=RUN_DIR")
    p.add_argument("--scratch", action="append", default=[], help="DATASET=RUN_DIR")
    p.add_argument("--commands", default="")
    p.add_argument("--notes", default="")
    p.add_argument("--earlier", help="an earlier transfer.json: its rows stand in (marked as "
                   "recorded earlier) for baselines whose run directories hold no evaluation")
    p.add_argument("--choose", help="print the val-chosen --update_lr/--finetune_bn of a run dir")
    p.add_argument("--method", default="all")
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--shots", type=int, default=1)
    a = p.parse_args()
    if a.choose:
        c = choose(a.choose, a.method, a.ways, a.shots)
        raise SystemExit(f"error: no eval_val files for {a.method} {a.ways}-way {a.shots}-shot in {a.choose}"
                         if c is None else print(f"--update_lr={c['inner_lr']:g} --finetune_bn={c['finetune_bn']}"))
    earlier = earlier_rows(a.earlier)
    rows = collect(dict(s.split("=", 1) for s in a.pretrained), dict(s.split("=", 1) for s in a.scratch),
                   earlier)
    plots = [plot(rows, d, out_dir(a.out)) for d in SETTINGS]
    images = "\n".join(f"![{os.path.basename(q)}]({os.path.basename(q)})" for q in plots if q)
    text = (f"{HEADER}\n{a.notes}\n\n## Results\n{table(rows)}\n\n## Accuracy against fine-tuning steps\n\n"
            f"{images}\n\n## Commands (run_experiments.sh)\n\n```\n{a.commands}\n```\n")
    machines = ", ".join(dict.fromkeys(m["hardware"] for r in rows for m in r["methods"]
                                       if m["status"] == RECORDED))
    if machines:
        text = text.replace("\n## Results\n", f"\n## Results\n\nRows marked *{RECORDED}* are the "
                            f"earlier report's ({a.earlier}), whose runs ran on: {machines}.\n", 1)
    write_report(a.out, "transfer", text, rows, machines or None)


if __name__ == "__main__":
    main()
