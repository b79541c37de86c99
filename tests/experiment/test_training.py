"""The real training loop at toy size: learning happens, one trace, checkpoints, resume, evaluation, errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from maml_tf.experiment import evaluate, train
from maml_tf.workdir.checkpoints import Checkpointer
from maml_tf.experiment.config import Config
from maml_tf.experiment.experiment import Experiment, task_batches

SINE = dict(dataset="sinusoid", shots=10, queries=10, eval_shots=10, eval_queries=10, norm="None",
            inner_lr=0.01, eval_inner_lr=0.01, meta_batch_size=25, print_interval=100,
            checkpoint_interval=100, val_interval=0)


def test_meta_training_on_sinusoid_makes_one_step_adaptation_work(tmp_path):
    config = Config(metatrain_iterations=500, meta_lr=0.01, **SINE)
    train.train_and_evaluate(config, str(tmp_path))
    exp = Experiment(config)
    Checkpointer(str(tmp_path), exp.state()).restore_latest()
    loss = evaluate.evaluate_learner(exp, "test", 200, 10, 10, 0.01, 1, seed=7)["loss"]["mean"]
    # At initialisation one step changes the MSE by <1% (4.22 -> 4.22 measured); after 500
    # meta-iterations one step cuts it by well over a third (3.65 -> 1.13, 3.61 -> 1.28 and
    # 3.43 -> 1.19 at seeds 0/1/2, ratios 0.31-0.35; 1000 iterations: 3.22 -> 0.72).
    assert loss[1] < 0.6 * loss[0], loss


def test_train_step_is_traced_once_across_iterations():
    exp = Experiment(Config(**SINE))
    step = exp.make_train_step(1)
    batches = task_batches(exp.sampler, "train", 25, 10, 10, seed=0, start=0)
    losses = [float(step(next(batches))["post_loss"]) for _ in range(5)]
    step(exp.sampler.sample("train", 7, 10, 10, np.random.default_rng(1)))  # another meta-batch size
    assert step.experimental_get_tracing_count() == 1
    assert len(set(losses)) == 5  # new tasks and new weights every iteration


def run_main(*flags, check=True):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-m", "maml_tf.main", *flags], capture_output=True,
                          text=True, env=env, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def toy_flags(logdir, iterations):
    return [f"--logdir={logdir}", "--datasource=sinusoid", "--norm=None", "--update_batch_size=5",
            "--meta_batch_size=4", f"--metatrain_iterations={iterations}", "--checkpoint_interval=10",
            "--print_interval=10", "--val_interval=10", "--num_val_tasks=4", "--num_test_tasks=20",
            "--test_num_updates=3"]


def test_main_checkpoints_resumes_and_evaluates(tmp_path):
    run_main(*toy_flags(tmp_path, 20))
    (rundir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert (rundir / "checkpoints" / "ckpt-20.index").exists()
    resumed = run_main(*toy_flags(tmp_path, 30))
    assert f"resuming {rundir} from iteration 20" in resumed.stdout
    assert "iter 30/30" in resumed.stdout and "iter 10/30" not in resumed.stdout
    rows = [json.loads(line) for line in open(rundir / "validation.jsonl")]
    assert [r["iteration"] for r in rows] == [10, 20, 30]
    assert all(r["steps"] == [0, 1, 3] and len(r["loss"]) == 3 for r in rows)  # 0, train, last
    run_main(*toy_flags(tmp_path, 30), "--train=False", "--test_set=True")
    result = json.load(open(rundir / "eval_test_shots5_lr0.001_iter30.json"))
    assert result["num_tasks"] == 20 and result["steps"] == [0, 1, 2, 3]
    assert len(result["metrics"]["loss"]["ci95"]) == 4
    csv_rows = open(rundir / "eval_test_shots5_lr0.001_iter30.csv").read().splitlines()
    assert csv_rows[0] == "step,loss_mean,loss_std,loss_ci95,loss_median,loss_nonfinite" and len(csv_rows) == 5


@pytest.mark.parametrize("flags, message", [
    (["--datasource=mnist"], "unknown datasource 'mnist'"),
    (["--num_classes=0"], "ways must be positive"),
    (["--datasource=omniglot", "--num_classes=1"], "ways (--num_classes) must be at least 2 to classify, got 1"),
    (["--meta_batch_size=-2"], "meta_batch_size must be positive"),
    (["--update_batch_size=0"], "shots must be positive"),
    (["--update_lr=0"], "inner_lr must be a finite positive learning rate"),
    (["--meta_lr=-1"], "meta_lr must be a finite positive learning rate"),
    (["--meta_lr=inf"], "meta_lr must be a finite positive learning rate, got inf"),
    (["--num_updates=-1"], "inner_steps must be >= 0"),
    (["--eval_seed=-5"], "eval_seed must be >= 0, got -5"),  # numpy's traceback before
    (["--test_best=True", "--test_iter=20"], "--test_best evaluates the best-validation model: give it or --test_iter=20, not both"),
    (["--norm=group"], "unknown norm 'group'"),
    (["--baseline=magic"], "unknown baseline 'magic'"),
    (["--record_steps=0,11"], "record_steps must lie in 0..10 (the evaluation's inner steps)"),
    (["--record_steps=ends"], "record_steps must be auto, all or steps like 0,5,50"),
])
def test_bad_flags_give_one_clear_line(tmp_path, flags, message):
    proc = run_main(f"--logdir={tmp_path}", *flags, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"error: {message}" + proc.stderr.split(message, 1)[1].strip()]
    assert "Traceback" not in proc.stderr


def last_line(proc):
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return proc.stderr.strip().splitlines()[-1]


def test_evaluating_without_a_checkpoint_is_a_clear_error(tmp_path):
    line = last_line(run_main(*toy_flags(tmp_path, 10), "--train=False", check=False))
    assert line.startswith("error: no checkpoint for any iteration in")


def test_a_run_that_diverged_before_its_first_checkpoint_starts_afresh_with_the_advised_fix(tmp_path):
    """A diverging loss stops main with one line; the command it advises then trains."""
    diverged = last_line(run_main(*toy_flags(tmp_path, 20), "--meta_lr=1e12", check=False))
    assert diverged.startswith("error: loss became NaN/inf at iteration") and "no checkpoint" in diverged
    again = run_main(*toy_flags(tmp_path, 20), "--meta_lr=0.001")  # the error's advice
    assert again.stderr.count("warning: ") == 1 and ("holds no checkpoint of the settings it was "
        "started with (meta_lr 1000000000000.0 -> 0.001): starting it afresh") in again.stderr
    (rundir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert json.loads((rundir / "config.json").read_text())["meta_lr"] == 0.001
    assert (rundir / "checkpoints" / "ckpt-20.index").exists()
