"""Builds results/rl_navigation.{md,json} and the paper's Figure 4 (left: return vs steps; right: trajectories).

Usage: python -m maml_tf.reports.rl_navigation --maml RUN_DIR --pretrained RUN_DIR --random RUN_DIR --out results
(each RUN_DIR trained and evaluated with `--train=False` by the run_experiments.sh lines it names).
"""

import glob
import json
import os

import numpy as np

from maml_tf.errors import OneLineParser
from maml_tf.reports.rl_figures import (LABELS, figure_returns, figure_training,
                                        figure_trajectories, label)
from maml_tf.reports.writer import out_dir


def load_eval(path: str) -> dict:
    """One evaluation (JSON + its .npz of paths) with its run's config, run info and validation curve."""
    run_dir = os.path.dirname(os.path.abspath(path))
    with open(path) as f:
        run = {"eval": json.load(f), "trajectories": dict(np.load(path[:-5] + ".npz")),
               "dir": run_dir}
    for name in ("config", "runinfo"):
        file = os.path.join(run_dir, f"{name}.json")
        run[name] = json.load(open(file)) if os.path.exists(file) else {}
    file = os.path.join(run_dir, "validation.jsonl")
    run["validation"] = ([json.loads(line) for line in open(file) if line.strip()]
                         if os.path.exists(file) else [])
    return run


def _iteration_and_goals(path: str):
    """(iteration, goals) of eval_<split>_goals<N>_lr<sizes>_iter<I>.json: the newest checkpoint's
    evaluation over the most goals is a row's (a quick one over a few goals is not)."""
    name = os.path.basename(path)
    return int(name.rsplit("_iter", 1)[1][:-5]), int(name.split("_goals", 1)[1].split("_", 1)[0])


def load_run(run_dir: str, step_sizes: str) -> dict:
    """The run's newest evaluation on the test goals with step sizes `step_sizes` ("0.1-0.05": first-later)."""
    evals = sorted(glob.glob(os.path.join(run_dir, f"eval_test_goals*_lr{step_sizes}_iter*.json")),
                   key=_iteration_and_goals)
    if not evals:
        raise SystemExit(f"no evaluation with step sizes {step_sizes} in {run_dir}: run it with "
                         "--train=False first")
    return load_eval(evals[-1])


def step_size_sweep(run_dir: str) -> list:
    """Rows (step sizes, return per step) of the run's evaluations on the validation goals."""
    paths = glob.glob(os.path.join(run_dir, "eval_val_goals*_lr*_iter*.json"))
    # step sizes are compared on one checkpoint's goals only: the newest's, the most of them
    newest = max(map(_iteration_and_goals, paths), default=None)
    rows = []
    for path in (p for p in paths if _iteration_and_goals(p) == newest):
        with open(path) as f:
            r = json.load(f)
        rows.append((r["step_sizes"][0], r["step_sizes"][1:2], r["iteration"], r["return"]))
    return sorted(rows, key=lambda row: -row[0])


def sweep_lines(name: str, run_dir: str) -> list:
    rows = step_size_sweep(run_dir)
    if not rows:
        return []
    best = max(rows, key=lambda row: row[3]["mean"][-1])
    lines = ["", f"{label(name)}: test step sizes tried on the validation goals (not the test goals);"
             " **bold**: the best return after the last step, the choice for a test row:",
             "", "| step sizes | " + " | ".join(f"step {s}" for s in range(len(rows[0][3]["mean"])))
             + " |", "|---|" + "---|" * len(rows[0][3]["mean"])]
    for first, later, iteration, ret in rows:
        sizes = "/".join(f"{x:g}" for x in [first, *later])
        sizes = f"**{sizes}**" if (first, later, iteration, ret) == best else sizes
        lines.append(f"| {sizes} (iter {iteration}) | " + " | ".join(
            f"{m:.2f} ± {c:.2f}" for m, c in zip(ret["mean"], ret["ci95"])) + " |")
    return lines


def training_line(name: str, run: dict) -> str:
    info, config = run["runinfo"], run["config"]
    if not config:
        return f"- {label(name)}: no training (the seed's initial policy)."
    target = config["pretrain_iterations"] + config["metatrain_iterations"]
    done = info.get("iterations", 0)
    hw = info["segments"][-1]["hardware"] if info.get("segments") else {}
    evaluated = run["eval"]["iteration"]
    cut = "" if evaluated >= target else (f" **cut short: evaluated at iteration {evaluated} of the"
                                          f" planned {target}**")
    return (f"- {label(name)}: {done} TRPO iterations, {info.get('wall_seconds', 0) / 60:.1f} min "
            f"wall time in {len(info.get('segments', []))} segment(s) on {hw.get('cores')} cores "
            f"({hw.get('cpu')}, {hw.get('memory_gib')} GiB, no GPU), shared with other jobs;"
            f" evaluated at iteration {run['eval']['iteration']}.{cut}")


# The paper's appendix C.2, Table 4 ("2D Pointmass, average return"), MAML after 0..3 steps;
# its Figure 4 (left) draws these and the pretrained and random policies' curves.
PAPER_MAML = (-40.41, -11.68, -3.33, -3.23)
PAPER_TEXT = ("The paper gives MAML's returns in its appendix (C.2, Table 4, \"2D Pointmass, average"
              " return\"; the published row) and draws them with the pretrained and random"
              " policies' in Figure 4 (left, curves only): a sharp improvement after one step that"
              " goes on after two and three. A row above that ends far from the published row after"
              " two and three steps is a difference from the paper this project has not explained."
              " A lead, not tested here: the original code's scripts (cbfinn/maml_rl, maml_examples/)"
              " differ from the paper's text. Its test script, test_maml_point.py (\"# ICML values\"),"
              " adapts with a first step of 0.5 and later steps of 0.25 on 40 trajectories per step"
              " (batch_size=4000, horizon 100), and loads a policy meta-trained with an inner step"
              " of 0.5 (trpomaml1_fbs20_mbs20_flr_0.5...); this project follows the paper's text"
              " (inner step 0.1; test steps 0.1, then 0.05; 20 trajectories per step).")


def write_markdown(runs: dict, out: str, commands: str):
    first = next(iter(runs.values()))["eval"]
    steps = first["steps"]
    lines = [
        "# 2D navigation: MAML vs pretrained vs random initialisation (paper Figure 4)", "",
        f"Average return (mean ± 95% CI over {first['num_tasks']} new goals, {first['paths_per_step']}"
        f" trajectories per goal and step) after 0..{steps[-1]} policy-gradient steps; step sizes"
        " are first/later (the paper: 0.1, then 0.05). Every policy meets the same goals and the"
        " same action noise.", "",
        "| init | step sizes | " + " | ".join(f"step {s}" for s in steps) + " |",
        "|---|---|" + "---|" * len(steps)]
    for name, run in runs.items():
        r = run["eval"]["return"]
        sizes = "/".join(f"{x:g}" for x in run["eval"]["step_sizes"][:2])
        lines.append(f"| {label(name)} (iter {run['eval']['iteration']}) | {sizes} | " + " | ".join(
            f"{m:.2f} ± {c:.2f}" for m, c in zip(r["mean"], r["ci95"])) + " |")
    if steps == list(range(len(PAPER_MAML))):
        lines.append("| *published:* MAML paper (appendix C.2, Table 4) | 0.1/0.05 | "
                     + " | ".join(f"{r:.2f}" for r in PAPER_MAML) + " |")
    for name in LABELS:
        if name in runs and step_size_sweep(runs[name]["dir"]):
            lines += sweep_lines(name, runs[name]["dir"]) + [
                "", "The paper's step sizes can overshoot for a policy trained without an inner"
                " step (its exploration noise has shrunk, and a policy-gradient step grows as the"
                " noise shrinks), so the table also lists the pretrained policy with the step sizes"
                " it does best with on the validation goals."]
    lines += [
        "", PAPER_TEXT, "",
        "![return vs gradient steps](rl_navigation_returns.png)", "",
        "Paths of the policy's mean action (no exploration noise) before adaptation and after 1 and"
        " 3 steps, for the first 3 evaluation goals (Figure 4 right; paths leaving the square are cut):",
        "",
        "![trajectories before and after adaptation](rl_navigation_trajectories.png)", "",
        "Validation return during training (1 step of size 0.1, fixed validation goals):", "",
        "![training curves](rl_navigation_training.png)", "",
        "## Training", ""]
    seen = set()
    for name, run in runs.items():
        if run["dir"] not in seen:  # one line per run directory
            seen.add(run["dir"])
            lines.append(training_line(name, run))
    lines += ["", "## Commands", "", "```", commands.strip(), "```", ""]
    with open(os.path.join(out, "rl_navigation.md"), "w") as f:
        f.write("\n".join(lines))


def main():
    parser = OneLineParser(description=__doc__.splitlines()[0])
    for name in LABELS:
        parser.add_argument(f"--{name}", help=f"run directory of the {LABELS[name]} policy")
    parser.add_argument("--step_sizes", default="0.1-0.05",
                        help="test step sizes (first-later) of the evaluations to report")
    parser.add_argument("--also", action="append", default=[], metavar="LABEL=EVAL_JSON",
                        help="another evaluation (any checkpoint or step sizes) for the table "
                             "and Figure 4 left")
    parser.add_argument("--trajectories", default="maml;pretrained",
                        help="';'-separated runs (names or --also labels) in the trajectory figure")
    parser.add_argument("--out", default="results")
    parser.add_argument("--commands", default="", help="the commands that produced the runs")
    args = parser.parse_args()
    runs = {name: load_run(getattr(args, name), args.step_sizes) for name in LABELS
            if getattr(args, name)}
    for spec in args.also:
        name, path = spec.split("=", 1)
        if not os.path.exists(path):  # e.g. a --quick run that never reached that iteration
            print(f"skipping {name}: no {path}", flush=True)
            continue
        runs[name] = load_eval(path)
    out_dir(args.out)
    figure_returns(runs, os.path.join(args.out, "rl_navigation_returns.png"))
    figure_trajectories(runs, os.path.join(args.out, "rl_navigation_trajectories.png"),
                        args.trajectories.split(";"))
    figure_training(runs, os.path.join(args.out, "rl_navigation_training.png"))
    write_markdown(runs, args.out, args.commands)
    summary = {name: {k: run["eval"][k] for k in ("iteration", "steps", "step_sizes", "return")}
               for name, run in runs.items()}
    with open(os.path.join(args.out, "rl_navigation.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"wrote {args.out}/rl_navigation.md, .json and 3 PNGs", flush=True)


if __name__ == "__main__":
    main()
