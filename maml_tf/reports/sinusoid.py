"""Builds results/sinusoid.{md,json} and the paper's Figures 2 and 3 from evaluated sinusoid runs.

Usage: python -m maml_tf.reports.sinusoid --maml RUN_DIR --pretrained RUN_DIR --out results
(each RUN_DIR trained and evaluated by the run_experiments.sh lines it names).
"""

import glob
import json
import os

import numpy as np

from maml_tf.errors import OneLineParser
from maml_tf.experiment.config import Config
from maml_tf.reports.writer import out_dir

# The paper's appendix C.1, Table 2 ("showing 5-shot mean squared error"): its only numbers.
PAPER = {"maml": {1: 0.67, 5: 0.38, 10: 0.35}, "pretrained": {1: 2.41, 5: 2.23, 10: 2.19}}
PAPER_K = 5
STEPS_SHOWN = (1, 5, 10)
LABELS = {"maml": "MAML", "pretrained": "pretrained"}
Y_MAX = 4.0  # Figure 3's scale; a mean above it (a diverging task) is left off the plot


def load_evals(run_dir: str):
    """{(shots, inner_lr): eval result} of the newest checkpoint evaluated on the test split."""
    found = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "eval_test_*.json"))):
        with open(path) as f:
            r = json.load(f)
        if r.get("eval_seed", Config.eval_seed) != Config.eval_seed:  # other tasks than every model's
            continue
        if r.get("queries", r["shots"]) != r["shots"]:  # a `_queries<Q>` side evaluation
            continue
        key = (r["shots"], r["inner_lr"])
        if key not in found or r["iteration"] > found[key]["iteration"]:
            found[key] = r
    return found


def restore(run_dir: str):
    """The run's meta-learned model (`maml_tf.load`: its newest checkpoint, adapting as the run
    does, learned step sizes included); UserError for a run without a checkpoint."""
    from maml_tf.deploy.loading import load

    return load(run_dir)


def label(meta) -> str:
    """What trained the model: a figure's title must not call a baseline MAML."""
    c = meta.config
    if not c.metatrain_iterations:
        return "pretrained"
    return "Reptile" if c.algorithm == "reptile" else "first-order MAML" if c.first_order else "MAML"


def figure_curves(runs, path, shots=10, inner_lr=None, seed=2024):
    """Figure 2: fitted curves after 1 and 10 steps on a few test tasks of each of `runs`
    ({name: meta-learned model}), at `inner_lr` (None: each run's own; a run with learned step
    sizes always uses them)."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    tasks = [(rng.uniform(0.1, 5.0), rng.uniform(0, np.pi)) for _ in range(3)]
    grid = np.linspace(-5, 5, 200, dtype=np.float32)[:, None]
    fig, axes = plt.subplots(len(runs), len(tasks), figsize=(4 * len(tasks), 3 * len(runs)),
                             squeeze=False)
    for row, meta in enumerate(runs.values()):
        lr = None if meta.rates is not None else inner_lr
        for col, (amp, phase) in enumerate(tasks):
            x = rng.uniform(-5, 5, size=(shots, 1)).astype(np.float32)
            y = (amp * np.sin(x - phase)).astype(np.float32)
            ax = axes[row][col]
            ax.plot(grid, amp * np.sin(grid - phase), "r", label="ground truth")
            for steps, style in ((0, ":"), (1, "--"), (10, "-")):
                adapted = meta.adapt(x, y, steps=steps, inner_lr=lr)
                # called, not predict(): predict traces a function per new model (a warning each)
                ax.plot(grid, adapted(grid, training=False).numpy(), style,
                        label=f"{steps} step{'s' if steps != 1 else ''}" if steps else "pre-update")
            ax.plot(x, y, "k^", label=f"{shots} points used")
            ax.set_title(f"{label(meta)}, A={amp:.2f}, phase={phase:.2f}")
            ax.set_ylim(-6, 6)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def figure_steps(evals, path):
    """Figure 3: test MSE vs number of gradient steps, MAML vs pretrained, for each K."""
    import matplotlib.pyplot as plt

    shots = sorted({k for per_run in evals.values() for k, _ in per_run})
    fig, axes = plt.subplots(1, len(shots), figsize=(5 * len(shots), 3.5), squeeze=False)
    for ax, k in zip(axes[0], shots):
        off_scale = False
        for name, per_run in evals.items():
            for (ks, lr), r in sorted(per_run.items()):
                if ks != k:
                    continue
                m = r["metrics"]["loss"]
                mean = np.asarray(m["mean"], dtype=float)
                off_scale |= bool(np.any(~(mean <= Y_MAX)))
                line = ax.errorbar(r["steps"], np.where(mean <= Y_MAX, mean, np.nan),
                                   yerr=m["ci95"], capsize=2, label=f"{LABELS[name]}, step={lr:g}")
                ax.plot(r["steps"], m["median"], "--", color=line[0].get_color(), alpha=0.6)
        title = f"K={k}: mean ± 95% CI (solid), median (dashed)"
        ax.set(title=title + ("\nmeans off-scale where a task diverges" if off_scale else ""),
               xlabel="number of gradient steps", ylabel="mean squared error", ylim=(0, Y_MAX))
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def recorded(path: str):
    """({name: runinfo}, {name: {(shots, inner_lr): eval}}) as an earlier sinusoid.json keeps them."""
    try:
        with open(path) as f:
            runs = json.load(f)["runs"]
        return ({n: r["runinfo"] for n, r in runs.items()},
                {n: {(e["shots"], e["inner_lr"]): e for e in r["evals"]} for n, r in runs.items()})
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SystemExit(f"error: the run directories are not here and {path} holds no earlier "
                         f"report's runs ({err.__class__.__name__})") from None


def runinfo(run_dir):
    config = os.path.join(run_dir, "config.json")
    if os.path.isfile(config):
        with open(config) as f:
            dataset = json.load(f).get("dataset")
        if dataset != "sinusoid":  # before any figure is written
            raise SystemExit(f"error: {run_dir} is a {dataset} run: this report is the sinusoid's")
    path = os.path.join(run_dir, "runinfo.json")
    if not os.path.isfile(path):  # the figures need the trained runs: no table of blanks
        raise SystemExit(f"error: {run_dir} holds no trained run (no runinfo.json): train it first "
                         "(./run_experiments.sh sinusoid)")
    with open(path) as f:
        return json.load(f)


def cell(m, steps, step, num_tasks):
    """mean ± 95% CI, the median, and how many tasks diverged when any did, after inner step
    `step` (by value in the evaluation's recorded `steps`; a dash if it is not among them)."""
    if step not in steps:
        return "–"
    i = steps.index(step)
    text = f"{m['mean'][i]:.3f} ± {m['ci95'][i]:.3f} (median {m['median'][i]:.3f})"
    if m["nonfinite"][i]:
        text += f"; diverged on {m['nonfinite'][i]}/{num_tasks} tasks"
    return text


def table(evals, infos):
    lines = ["| method | K | step size | " + " | ".join(f"{s} step{'s' * (s > 1)}" for s in STEPS_SHOWN)
             + f" | paper (K={PAPER_K}; 1 / 5 / 10 steps) | iterations | wall time |",
             "|---|---|---|" + "---|" * len(STEPS_SHOWN) + "---|---|---|"]
    for name, per_run in evals.items():
        for (k, lr), r in sorted(per_run.items()):
            m = r["metrics"]["loss"]
            steps = list(r.get("steps") or range(len(m["mean"])))
            cells = [cell(m, steps, s, r["num_tasks"]) for s in STEPS_SHOWN]
            paper = " / ".join(f"{PAPER[name][s]}" for s in STEPS_SHOWN) if k == PAPER_K else "—"
            info = infos[name]
            lines.append(f"| {LABELS[name]} | {k} | {lr:g} | " + " | ".join(cells) +
                         f" | {paper} | {r['iteration']} | {info['wall_seconds'] / 60:.1f} min |")
    return "\n".join(lines)


def main():
    parser = OneLineParser(description=__doc__)
    parser.add_argument("--maml", required=True)
    parser.add_argument("--pretrained", required=True)
    parser.add_argument("--out", default="results")
    parser.add_argument("--commands", default="", help="text of the commands that made the runs")
    parser.add_argument("--recorded", help="an earlier sinusoid.json: its evaluations and run records "
                        "rebuild the tables where the run directories are not kept (figures kept)")
    args = parser.parse_args()
    dirs = {"maml": args.maml, "pretrained": args.pretrained}
    kept = not args.recorded or all(os.path.isdir(d) for d in dirs.values())
    infos, evals = ({name: runinfo(d) for name, d in dirs.items()},
                    {name: load_evals(d) for name, d in dirs.items()}) if kept else recorded(args.recorded)
    for name, found in evals.items():
        if not found:
            raise SystemExit(f"error: {dirs[name]} has no test evaluation (eval_test_*.json): run "
                             "its -test lines (./run_experiments.sh sinusoid)")
    out_dir(args.out)
    if kept:  # else the figures drawn from the runs stay as they were
        figure_steps(evals, os.path.join(args.out, "sinusoid_mse_vs_steps.png"))
        figure_curves({n: restore(d) for n, d in dirs.items()},
                      os.path.join(args.out, "sinusoid_fitted_curves.png"), inner_lr=0.01)  # the paper's
    hw = infos["maml"]["segments"][-1]["hardware"]
    with open(os.path.join(args.out, "sinusoid.json"), "w") as f:
        json.dump({"paper": PAPER, "runs": {n: {"run_dir": os.path.basename(dirs[n]),
                                                 "runinfo": infos[n],
                                                 "evals": list(evals[n].values())}
                                             for n in dirs}}, f, indent=1)
    with open(os.path.join(args.out, "sinusoid.md"), "w") as f:
        iters = {n: infos[n]["iterations"] for n in dirs}
        short = "" if min(iters.values()) >= 70000 else " (CUT SHORT of the paper's 70,000)"
        num_tasks = next(iter(evals["maml"].values()))["num_tasks"]
        f.write(REPORT.format(table=table(evals, infos), hw=hw, commands=args.commands.strip(),
                              iters=iters, short=short, num_tasks=num_tasks))


REPORT = """# Sinusoid regression (the paper's Section 5.1, Figures 2 and 3)

Test MSE (mean ± 95% CI over {num_tasks} fixed test tasks, K query points each, and the median)
after 1, 5 and 10 gradient steps on K support points. A mean that is large or infinite while the
median is small comes from a few tasks on which repeated steps diverge. Generated by
`python -m maml_tf.reports.sinusoid` from the runs' evaluation files; every number below was measured by the commands at the end.

{table}

The paper's only numbers for this setting are in its appendix (C.1, Table 2, "showing 5-shot
mean squared error"): MAML 0.67 / 0.38 / 0.35 and "pretrain on all tasks" 2.41 / 2.23 / 2.19
after 1 / 5 / 10 steps, after 70,000 training iterations; they stand beside the K=5 rows (its
Figures 2 and 3 show K=5, 10 and 20 as curves only). The networks here trained at K=10, so their
K=5 rows are an evaluation at a K they did not train on. Iterations trained
here: MAML {iters[maml]}, pretrained {iters[pretrained]}{short}. Training: meta-batch 25, Adam 1e-3,
K=10; MAML with one inner step of 0.01 (the paper's alpha). The pretrained network is fine-tuned
at test time with the step size in the table (0.01 and 0.02 are both shown).

![MSE vs steps](sinusoid_mse_vs_steps.png)

![fitted curves](sinusoid_fitted_curves.png)

Hardware: {hw[cpu]}, {hw[cores]} cores, {hw[memory_gib]} GiB, GPUs: {hw[gpus]}; TensorFlow
{hw[tensorflow]}, Python {hw[python]}. Wall time is training only (from each run's runinfo.json,
which also records the machine's mean load average while the run trained: the runs above shared
the 2 cores with other jobs, so their wall times are upper bounds).

## Commands

```
{commands}
```
"""

if __name__ == "__main__":
    main()
