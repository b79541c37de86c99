"""`python -m maml_tf.bench.eval_cost`: seconds per evaluation task of the compiled evaluation, `Experiment.curve_fn`.

Times the real evaluation path (`Experiment.curve_fn` -> `evaluation.adaptation_curve`, with the
run's loss, inner optimizer and batch norm mode) on synthetic tasks, each variant in its own
process: the 600-task MiniImageNet test (5-way 1-shot, 10 steps, 75 query images) and Reptile's
non-transductive Omniglot evaluation (50 Adam steps on batches of 5 or 10, each query image
predicted in a batch with the support set only). Variants: `record` (all: every step 0..steps
is predicted, as evaluation did before issue 17; rule: the steps `recorded.eval_steps` names,
as evaluation does now; ends: steps 0 and the last only) and `vectorized` (non-transductive
predictions in one tf.vectorized_map call, or the reference tf.map_fn loop over query images).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from maml_tf.errors import OneLineParser

# Reptile's evaluation settings of run_experiments.sh, on the bench's network.
_REPTILE = dict(algorithm="reptile", inner_optimizer="adam", transductive=False)
SETTINGS = {
    # MAML's MiniImageNet test: 5-way 1-shot, 15 query images per class, 10 SGD steps of 0.01.
    "mini_5w1s_test": dict(bench="miniimagenet_5w1s_o2", shots=1, queries=15, steps=10, lr=0.01,
                           transductive=True, config={}),
    # Reptile's Omniglot tests (run_experiments.sh): 50 Adam steps of 0.001 on batches of 5
    # (5-way) or 10 (20-way), 1 query image per class, non-transductive.
    "reptile_5w1s_nontransductive": dict(bench="omniglot_5w1s_q1_o1", shots=1, queries=1,
                                         steps=50, lr=0.001, transductive=False,
                                         config=dict(_REPTILE, ways=5, eval_inner_batch_size=5)),
    "reptile_20w1s_nontransductive": dict(bench="omniglot_20w1s_q1_o1", shots=1, queries=1,
                                          steps=50, lr=0.0005, transductive=False,
                                          config=dict(_REPTILE, ways=20, eval_inner_batch_size=10)),
}


def record_steps(record: str, steps: int):
    """The steps a variant predicts: all (None), the evaluation's rule, or 0 and the last."""
    from maml_tf.experiment import recorded

    return {"all": None, "rule": recorded.eval_steps(steps), "ends": [0, steps]}[record]


def measure(setting: str, record: str, vectorized: bool, tasks: int, calls: int):
    """Times `calls` compiled evaluations of `tasks` tasks in this process; one JSON-able row."""
    s = SETTINGS[setting]
    from maml_tf.bench import step
    from maml_tf.experiment import runtime

    config = step.make_config(s["bench"], s["config"])
    runtime.configure(config)
    import numpy as np

    from maml_tf import evaluation
    from maml_tf.experiment import experiment

    evaluation.VECTORIZED_NONTRANSDUCTIVE = vectorized
    sampler = step.make_sampler(s["bench"], config)
    exp = experiment.Experiment(config, sampler=sampler)
    steps = record_steps(record, s["steps"])
    curve = exp.curve_fn(s["shots"], s["queries"], s["lr"], s["steps"], steps)
    batch = sampler.sample("test", tasks, s["shots"], s["queries"], np.random.default_rng(0))
    busy0, cpu_first, t0 = step._busy_jiffies(), sum(os.times()[:2]), time.perf_counter()
    first = {k: v.numpy() for k, v in curve(batch).items()}
    first_s = time.perf_counter() - t0
    times, cpu0, busy1 = [], sum(os.times()[:2]), step._busy_jiffies()
    for _ in range(calls):
        t = time.perf_counter()
        {k: v.numpy() for k, v in curve(batch).items()}
        times.append(time.perf_counter() - t)
    busy2, cpu2, tick = step._busy_jiffies(), sum(os.times()[:2]), os.sysconf("SC_CLK_TCK")
    per_task = statistics.median(times) / tasks
    return {"setting": setting, "record": record, "recorded_steps": steps or "all",
            "vectorized": vectorized, "tasks_per_call": tasks,
            "calls": calls, "call_s": statistics.median(times), "per_task_s": per_task,
            "600_tasks_s": 600 * per_task, "first_call_s": first_s,
            "trace_s": first_s - statistics.median(times),  # the first call beyond a later one
            "cores_used": (cpu2 - cpu0) / sum(times),
            # cores other processes used meanwhile (a quiet machine: ~0)
            "others_cores_first": max(0.0, (busy1 - busy0) / tick - (cpu0 - cpu_first)) / first_s,
            "others_cores": max(0.0, (busy2 - busy1) / tick - (cpu2 - cpu0)) / sum(times),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "final_accuracy_mean": float(first["accuracy"][:, -1].mean()),
            "loadavg": os.getloadavg()[0]}


def main(argv=None):
    p = OneLineParser(description=__doc__.splitlines()[0])
    p.add_argument("--settings", default=",".join(SETTINGS))
    p.add_argument("--variants", default="all/vec,rule/vec,ends/vec",
                   help="record/predict pairs: record all|rule|ends, predict map|vec (non-transductive)")
    p.add_argument("--tasks", type=int, default=4, help="tasks per compiled call")
    p.add_argument("--calls", type=int, default=3)
    p.add_argument("--out", default=None, help="append the JSON lines to this file")
    p.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    problem = _refusal(args)
    if problem:
        sys.exit(f"error: {problem}")
    if args.child:
        setting, record, predict = args.child
        print(json.dumps(measure(setting, record, predict == "vec", args.tasks, args.calls)),
              flush=True)
        return
    failed = False
    for setting in args.settings.split(","):
        for variant in args.variants.split(","):
            record, predict = variant.split("/")
            if SETTINGS[setting]["transductive"] and predict == "map":
                predict = "vec"  # the same code: transductive predictions are one call anyway
            cmd = [sys.executable, "-m", "maml_tf.bench.eval_cost", "--child", setting, record,
                   predict, "--tasks", str(args.tasks), "--calls", str(args.calls)]
            out = subprocess.run(cmd, capture_output=True, text=True,
                                 env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
            rows = [line for line in out.stdout.splitlines() if line.startswith("{")]
            row = json.loads(rows[-1]) if rows else {"setting": setting, "variant": variant,
                                                     "error": out.stderr[-600:]}
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
            failed = failed or "error" in row
    if failed:
        sys.exit("error: a measurement failed (its row holds the error)")


def _refusal(args) -> str:
    """What is wrong with the command line, before anything runs ('' if nothing)."""
    unknown = [s for s in args.settings.split(",") if s not in SETTINGS]
    if unknown:
        return f"--settings: no setting {', '.join(unknown)} (known: {', '.join(SETTINGS)})"
    for variant in args.variants.split(","):
        record, _, predict = variant.partition("/")
        if record not in ("all", "rule", "ends") or predict not in ("map", "vec"):
            return f"--variants: {variant} is not RECORD/PREDICT (all|rule|ends / map|vec)"
    if args.tasks < 1 or args.calls < 1:
        return f"--tasks and --calls must be at least 1, got {args.tasks} and {args.calls}"
    return ""


if __name__ == "__main__":
    main()
