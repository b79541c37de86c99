"""results/reptile.{md,json}: Reptile on Omniglot beside this project's MAML and first-order MAML, from the runs' own files.

    python -m maml_tf.reports.reptile --out results --run "LABEL=RUN_DIR" [...] \
        [--timing "LABEL=BENCH.jsonl" ...] [--commands TEXT]

LABEL is a key of ROWS' first column ("reptile", "maml", "maml5", "fomaml"); each run contributes
the rows of its label, each timing file (`python -m maml_tf.bench.benchmark --out`, run with that
run's settings) its quiet seconds per iteration. Numbers come from the runs' evaluation JSON files, runinfo.json and the
benchmark's JSON lines; nothing is typed in except the papers' numbers.
"""

import glob
import json
import os
import re
from typing import Dict, List, Optional

from maml_tf.errors import OneLineParser
from maml_tf.reports.runs import accuracy_at, hours_until, newest_at_own_step_size, validation_of
from maml_tf.reports.runs import status as run_status
from maml_tf.reports.writer import hardware, out_dir, write_report
from maml_tf.workdir.rundir import read_json

# (run label, setting, K, transductive, steps reported, paper's accuracy %, paper's iterations)
ROWS = [
    ("reptile", "Reptile 5-way 1-shot", 1, False, 50, "95.39 (Reptile paper)", 100000),
    ("reptile", "Reptile 5-way 1-shot", 1, True, 50, "97.68 (Reptile paper)", 100000),
    ("reptile", "Reptile 5-way 5-shot", 5, False, 50, "98.90 (Reptile paper)", 100000),
    ("reptile", "Reptile 5-way 5-shot", 5, True, 50, "99.48 (Reptile paper)", 100000),
    ("maml", "MAML 5-way 1-shot", 1, True, 3, "98.7 ± 0.4 (MAML paper)", 60000),
    ("maml5", "MAML 5-way 5-shot", 5, True, 3, "99.9 ± 0.1 (MAML paper)", 60000),
    ("fomaml", "first-order MAML 5-way 1-shot", 1, True, 3,
     "98.3 ± 0.5 (Reptile paper, Table 2: 1st-order MAML + Transduction)", 60000),
]
EVAL_NAME = re.compile(r"eval_test_shots(\d+)_lr[^_]+_iter(\d+)(_nontransductive)?\.json$")


def newest_eval(run_dir: str, shots: int, transductive: bool) -> Optional[Dict]:
    """The test-split evaluation JSON of the newest evaluated checkpoint with this K and mode,
    at the run's own step size."""
    found = []
    for path in glob.glob(os.path.join(run_dir, "eval_test_shots*_iter*.json")):
        m = EVAL_NAME.search(os.path.basename(path))
        if m and int(m.group(1)) == shots and (m.group(3) is None) == transductive:
            found.append((int(m.group(2)), path))
    return newest_at_own_step_size(run_dir, found)


def training_speed(run_dir: str) -> Optional[Dict]:
    """Wall seconds per iteration over the whole run (runinfo.json) and the load it ran under."""
    path = os.path.join(run_dir, "runinfo.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        info = json.load(f)
    loads = [s["mean_loadavg"] for s in info["segments"] if s.get("mean_loadavg") is not None]
    return {"s_per_iter": info["wall_seconds"] / max(info["iterations"], 1),
            "iterations": info["iterations"], "mean_loadavg": max(loads) if loads else None}


def quiet_timing(path: str) -> Dict:
    """The benchmark's maml_tf step times in one file: the median of its per-run medians, and
    the range of those medians (one run per repeat)."""
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    medians = sorted(r["step_s"]["median"] for r in records if r["who"] == "maml_tf")
    if not medians:
        raise SystemExit(f"{path}: no maml_tf benchmark line")
    return {"median": medians[len(medians) // 2], "min": medians[0], "max": medians[-1],
            "runs": len(medians), "loadavg": [r.get("loadavg") for r in records]}


def collect(runs: Dict[str, str], timing: Dict[str, Dict]) -> List[Dict]:
    rows = []
    for label, setting, shots, transductive, steps, paper, paper_its in ROWS:
        row = {"label": label, "setting": setting, "shots": shots, "transductive": transductive,
               "paper": paper, "status": "not run yet", "quiet_step_s": timing.get(label)}
        run_dir = runs.get(label)
        evaluation = newest_eval(run_dir, shots, transductive) if run_dir else None
        if evaluation:
            acc = accuracy_at(evaluation, steps)  # by step value: a 50-step test is sparse
            history, patience = validation_of(run_dir)
            row.update(status=run_status(evaluation["iteration"], paper_its, history, patience),
                       run_dir=run_dir, iterations=evaluation["iteration"], paper_iterations=paper_its,
                       steps=acc["step"], num_tasks=evaluation["num_tasks"],
                       accuracy={"mean": acc["mean"], "ci95": acc["ci95"]},
                       wall_time_hours=hours_until(run_dir, evaluation["iteration"]),
                       training_speed=training_speed(run_dir))
        rows.append(row)
    return rows


def _row_line(r: Dict) -> str:
    mode = "transductive" if r["transductive"] else "non-transductive"
    quiet = r.get("quiet_step_s")
    quiet = f"{quiet['median']:.3f}" if quiet else "-"
    if r["status"] == "not run yet":
        return f"| {r['setting']} | {mode} | {r['paper']} | not run yet | | | {quiet} | | |"
    speed = r.get("training_speed")
    trained = f"{speed['s_per_iter']:.3f} (load {speed['mean_loadavg']:.1f})" if speed else "?"
    hours = f"{r['wall_time_hours']:.2f} h" if r.get("wall_time_hours") else "?"
    status = r["status"]
    return (f"| {r['setting']} | {mode} | {r['paper']} | {r['accuracy']['mean']:.2f} ± "
            f"{r['accuracy']['ci95']:.2f} (after {r['steps']} steps, {r['num_tasks']} tasks) | "
            f"{r['iterations']:,} | {status} | {quiet} | {trained} | {hours} |")


def _tasks(rows: List[Dict]) -> str:
    """The test-task count the tested rows share, from their files (a row may have been run with
    --num_test_tasks)."""
    counts = sorted({r["num_tasks"] for r in rows if "num_tasks" in r})
    if len(counts) == 1:
        return f"{counts[0]:,} tasks"
    return "tasks (as many as each row names)" if counts else "test tasks"


def markdown(rows: List[Dict], commands: str, notes: str) -> str:
    lines = ["# Reptile vs MAML vs first-order MAML on Omniglot (meta-test split)", "",
             f"Hardware: {hardware(rows)}. Accuracy in % on {_tasks(rows)} of the 423 meta-test characters "
             "(maml_tf's own seeded random split, with the MAML code's sizes but not its membership: "
             "results/omniglot.md, protocol point 1; shared by all rows), mean ± 95% CI. "
             "Transductive: the query images are predicted in one batch (batch-norm statistics "
             "shared, as MAML does); non-transductive: each query image is predicted in a batch "
             "with the support set only (the Reptile paper's main setting).", "",
             "| setting | test mode | paper | this code | iterations | status | s/iter quiet "
             "(benchmark) | s/iter in training: wall clock, shared machine (mean load) | wall time |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [_row_line(r) for r in rows]
    if notes:
        lines += ["", notes.strip()]
    if commands:
        lines += ["", "Commands:", "", "```", commands.strip(), "```"]
    return "\n".join(lines) + "\n"


def labelled(items: List[str], flag: str) -> Dict[str, str]:
    """{LABEL: PATH} of `flag` LABEL=PATH arguments; one error line for another form or label
    (a misspelt label would leave its row "not run yet")."""
    labels = sorted({row[0] for row in ROWS})
    found = {}
    for item in items:
        label, sep, path = item.partition("=")
        if not sep or label not in labels or not path:
            raise SystemExit(f"error: {flag} {item}: give LABEL=PATH with LABEL one of {', '.join(labels)}")
        if flag == "--run" and os.path.isfile(os.path.join(path, "config.json")):
            dataset = (read_json(os.path.join(path, "config.json")) or {}).get("dataset")
            if dataset != "omniglot":
                raise SystemExit(f"error: {flag} {item} is a {dataset} run: this table is Omniglot's")
        found[label] = path
    return found


def main():
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results")
    parser.add_argument("--run", action="append", default=[], help="LABEL=RUN_DIR")
    parser.add_argument("--timing", action="append", default=[], help="LABEL=BENCH.jsonl")
    parser.add_argument("--commands", default="")
    parser.add_argument("--notes", default="", help="a paragraph quoted under the table")
    args = parser.parse_args()
    runs, timing = labelled(args.run, "--run"), labelled(args.timing, "--timing")
    timing = {label: quiet_timing(path) for label, path in timing.items()}
    rows = collect(runs, timing)
    out_dir(args.out)
    write_report(args.out, "reptile", markdown(rows, args.commands, args.notes), rows)


if __name__ == "__main__":
    main()
