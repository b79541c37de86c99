"""What a paper row reads from its run directory: the newest and best-validation test evaluations, the validation history, iterations, wall time and status."""

import glob
import os
import re
from typing import Dict, List, Optional

from maml_tf.errors import OneLineParser
from maml_tf.experiment.recorded import at_step, nearest, steps_of
from maml_tf.workdir.rundir import read_json, read_jsonl
from maml_tf.workdir.selection import ModelSelection
from maml_tf.reports.writer import out_dir, wall_time_hours, write_report

EVAL_NAME = re.compile(r"eval_(best_)?test_shots(\d+)_lr[^_]+_iter(\d+)\.json$")


def find_run(logdirs: List[str], run: str) -> Optional[str]:
    """The first of `logdirs` (live runs first, then the stored ones) that holds `run`."""
    return next((os.path.join(d, run) for d in logdirs if os.path.isdir(os.path.join(d, run))), None)


def test_eval(run_dir: str, shots: int, best: bool = False) -> Optional[Dict]:
    """The meta-test evaluation (K = shots) of the newest evaluated checkpoint, or of the
    best-validation model (`best`), or None; at the run's own step size only (an evaluation at
    another --update_lr is a side experiment, not the row's number)."""
    found = []
    for path in glob.glob(os.path.join(run_dir, "eval_*test_shots*_iter*.json")):
        m = EVAL_NAME.search(os.path.basename(path))
        if m and bool(m.group(1)) == best and int(m.group(2)) == shots:
            found.append((int(m.group(3)), path))
    return newest_at_own_step_size(run_dir, found)


def newest_at_own_step_size(run_dir: str, found: List) -> Optional[Dict]:
    """Of `found` [(iteration, path of an evaluation JSON)], the newest evaluated with the run's
    own evaluation step size (config.json's eval_inner_lr; any, if the run has none)."""
    own = (read_json(os.path.join(run_dir, "config.json")) or {}).get("eval_inner_lr")
    for _, path in sorted(found, reverse=True):
        result = read_json(path)
        if isinstance(result, dict) and (own is None or result.get("inner_lr") == own):
            return result
    return None


def trained(run_dir: str) -> Dict:
    """Iterations trained and wall hours, from runinfo.json (TensorBoard events if it lacks them)."""
    info = read_json(os.path.join(run_dir, "runinfo.json")) or {}
    iterations = info.get("iterations")
    hours = info["wall_seconds"] / 3600 if info.get("wall_seconds") else None
    if hours is None and iterations:
        hours = wall_time_hours(run_dir, iterations)
    return {"iterations": iterations, "wall_time_hours": hours}


def hours_until(run_dir: str, until: int) -> Optional[float]:
    """Wall hours of training up to iteration `until`: from runinfo.json if a segment ends there
    (a run kept in the run store has no TensorBoard events), else from the events."""
    info = read_json(os.path.join(run_dir, "runinfo.json"))
    segments = [s for s in (info.get("segments") or [] if isinstance(info, dict) else [])
                if isinstance(s, dict)]
    if any(s.get("end_iteration") == until for s in segments):
        return sum(s.get("wall_seconds") or 0.0 for s in segments
                   if (s.get("end_iteration") or 0) <= until) / 3600
    return wall_time_hours(run_dir, until)


def accuracy_at(evaluation: Dict, step: int) -> Dict:
    """Accuracy (%) after inner step `step` (by its value: an evaluation may record only some
    steps; the last recorded before it if it is not there) and at every recorded step."""
    acc = evaluation["metrics"]["accuracy"]
    steps = steps_of(evaluation, len(acc["mean"]))
    return {"iteration": evaluation["iteration"], "num_tasks": evaluation["num_tasks"],
            "step": nearest(steps, step), "mean": 100 * at_step(acc["mean"], steps, step),
            "ci95": 100 * at_step(acc["ci95"], steps, step),
            "by_step": {"steps": steps, "mean": [100 * m for m in acc["mean"]],
                        "ci95": [100 * c for c in acc["ci95"]]}}


def status(iterations: Optional[int], target: int, history: List[Dict], patience: int) -> str:
    """complete / stopped early (the patience rule) / cut short at N of target."""
    if iterations is None:
        return "not run yet"
    if iterations >= target:
        return "complete"
    selection = ModelSelection(history, patience)
    if selection.exhausted(iterations):
        return (f"stopped early at {iterations:,} (no meta-validation gain for {patience:,} "
                f"iterations after {selection.best_iteration:,})")
    return f"**cut short** at {iterations:,} of {target:,} iterations"


def validation_of(run_dir: str):
    """(validation history, patience) of a run directory: what its status and model selection read."""
    history = read_jsonl(os.path.join(run_dir, "validation.jsonl"))
    return history, (read_json(os.path.join(run_dir, "config.json")) or {}).get("patience", 0)


def paper_row(logdirs: List[str], run: str, shots: int, step: int, target: int) -> Dict:
    """Everything a report row shows of one run (empty of results if it has not run)."""
    run_dir = find_run(logdirs, run)
    row = {"run": run, "status": "not run yet"}
    if run_dir is None:
        return row
    history, patience = validation_of(run_dir)
    for key, best in (("newest", False), ("best", True)):
        evaluation = test_eval(run_dir, shots, best)
        if evaluation:
            row[key] = accuracy_at(evaluation, step)
    done = trained(run_dir)
    if done["iterations"] is None and "newest" in row:  # a run directory without its runinfo
        done["iterations"] = row["newest"]["iteration"]
    row.update(run_dir=run_dir, validation=history, **done,
               status=status(done["iterations"], target, history, patience))
    return row


def cell(result: Optional[Dict], step: Optional[int] = None) -> str:
    """'mean ± ci (iteration N)' of a row's evaluation, or a dash; the step it was read at
    when that is not `step` (an evaluation that did not record the paper's step)."""
    if not result:
        return "–"
    read_at = result.get("step", step)
    other = f", after {read_at} steps" if step is not None and read_at != step else ""
    return f"{result['mean']:.1f} ± {result['ci95']:.1f} (it. {result['iteration']:,}{other})"


def table(rows: List[Dict]) -> List[str]:
    """The markdown table of paper rows (newest and best-validation model), then each curve."""
    lines = ["Two models of each run are tested: the newest checkpoint, and the best-validation "
             "model (the checkpoint with the highest meta-validation accuracy, as the paper's "
             "author chose hers); nothing is chosen on the test split.", "",
             "| setting | paper | newest checkpoint | best-validation model | test steps | tasks "
             "| iterations trained | wall time | status |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        paper = r["paper"] if isinstance(r["paper"], str) else f"{r['paper']['mean']} ± {r['paper']['ci95']}"
        if "newest" not in r and "best" not in r:
            lines.append(f"| {r['setting']} | {paper} | {r['status']} | | {r['paper_steps']} | | | | |")
            continue
        hours = f"{r['wall_time_hours']:.2f} h" if r.get("wall_time_hours") else "?"
        tasks = (r.get("newest") or r.get("best"))["num_tasks"]
        newest, best = cell(r.get("newest"), r["paper_steps"]), cell(r.get("best"), r["paper_steps"])
        chosen = ModelSelection(r.get("validation") or []).best_iteration
        if r.get("best") and chosen is not None and chosen != r["best"]["iteration"]:
            best += f"; validation's best is now it. {chosen:,}, not tested yet"
        if "cut short" in r["status"]:  # beside the number it is compared with
            paper += " (ours: cut short)"
        lines.append(f"| {r['setting']} | {paper} | {newest} | {best} "
                     f"| {r['paper_steps']} | {tasks} | {r['iterations']:,} | {hours} | {r['status']} |")
    lines += ["", "Accuracy (%) after each test-time step (0 = before adaptation), mean ± 95% CI:", ""]
    for r in rows:
        for key in ("newest", "best"):
            if key in r:
                curve = r[key]["by_step"]
                steps = ", ".join(f"{m:.1f} ± {c:.1f}" for m, c in zip(curve["mean"], curve["ci95"]))
                if curve.get("steps") not in (None, list(range(len(curve["mean"])))):  # sparse
                    steps = ", ".join(f"step {s}: {m:.1f} ± {c:.1f}" for s, m, c in
                                      zip(curve["steps"], curve["mean"], curve["ci95"]))
                lines.append(f"- {r['setting']}, {key} (iteration {r[key]['iteration']:,}): {steps}")
    return lines


def tail(commands: str, notes: str) -> List[str]:
    """The commands block and the notes on how the runs were made."""
    lines = ["Commands:", "", "```", commands.strip(), "```", ""] if commands else []
    return lines + ([notes.strip(), ""] if notes else [])


def plot_validation(rows: List[Dict], path: str, title: str):
    """Meta-validation accuracy against iterations, before and after the paper's test steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        history = r.get("validation") or []
        if not history:
            continue
        its = [h["iteration"] for h in history]
        # By step value: a row records only the steps validation reads (0, the training steps,
        # the last), older rows every step.
        curves = [(h["accuracy"], steps_of(h, len(h["accuracy"]))) for h in history]
        step = nearest(curves[-1][1], r["paper_steps"])
        line, = ax.plot(its, [100 * at_step(a, s, step) for a, s in curves], marker=".",
                        label=f"{r['setting']}, after {step} steps")
        ax.plot(its, [100 * at_step(a, s, 0) for a, s in curves], "--", color=line.get_color(),
                alpha=0.6, label=f"{r['setting']}, before adaptation")
        published = r["paper"]["mean"] if isinstance(r["paper"], dict) else None
        if published is not None:  # a text: no number checked in its source
            ax.axhline(published, color=line.get_color(), lw=0.8, ls=":")
    ax.set_xlabel("meta-training iteration")
    ax.set_ylabel("meta-validation accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report_main(doc: str, name: str, collect, markdown, title: str):
    """The command line of a paper-table report: runs from --logdir folders -> results/NAME.{md,json,png}."""
    parser = OneLineParser(description=doc.splitlines()[0])
    parser.add_argument("--out", default="results")
    parser.add_argument("--logdir", action="append", required=True, help="parent of run directories")
    parser.add_argument("--commands", default="", help="the exact commands, quoted in the report")
    parser.add_argument("--notes", default="", help="how the runs were made, quoted at the end")
    args = parser.parse_args()
    if not any(os.path.isdir(d) for d in args.logdir):  # a typo would give a table of "not run yet"
        raise SystemExit(f"error: no --logdir is a folder: {', '.join(args.logdir)}")
    rows = collect(args.logdir)
    out_dir(args.out)
    plot_validation(rows, os.path.join(args.out, f"{name}_val.png"), title)
    write_report(args.out, name, markdown(rows, args.commands, args.notes), rows)
