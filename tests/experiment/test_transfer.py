"""The transfer baselines at toy size: pretraining learns and resumes, the head is replaced, head-only keeps the backbone, 1-NN, file format."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from maml_tf import algorithms
from maml_tf.experiment import evaluate
from maml_tf.transfer import baselines, pretrain, pretrained as pretrained_net
from maml_tf.experiment.config import Config
from maml_tf.experiment.choices import loss_for
from maml_tf.types import Task
from maml_tf.errors import UserError
from omniglot_helpers import DATA_DIR, ROOT, needs_data

SIZE, CLASSES = 16, {"train": 12, "val": 6, "test": 6}


class ToySampler:
    """Class-pattern images (a fixed random pattern per class + noise), disjoint train/val/test classes."""

    problem, input_shape, per_class = "classification", (SIZE, SIZE, 1), 10

    def __init__(self, ways=3):
        rng = np.random.default_rng(0)
        self.output_dim = ways
        self.protos = {s: rng.random((n, SIZE, SIZE, 1)) for s, n in CLASSES.items()}
        self.noise = {s: rng.random((n, self.per_class, SIZE, SIZE, 1)) for s, n in CLASSES.items()}

    def images(self, split):
        return (0.7 * self.protos[split][:, None] + 0.3 * self.noise[split]).astype(np.float32)

    def arrays(self):
        x = self.images("train")
        y = np.repeat(np.arange(CLASSES["train"], dtype=np.int32), self.per_class)
        return (x.reshape((-1,) + self.input_shape) * 255).astype(np.uint8), y

    def sample(self, split, meta_batch_size, shots, queries, rng):
        imgs, out = self.images(split), []
        for _ in range(meta_batch_size):
            cls = rng.permutation(len(imgs))[:self.output_dim]
            pick = [rng.permutation(self.per_class)[:shots + queries] for _ in cls]
            x = np.stack([imgs[c, p] for c, p in zip(cls, pick)])  # [ways, s+q, ...]
            y = np.broadcast_to(np.arange(self.output_dim, dtype=np.int32)[:, None], x.shape[:2])
            out.append(Task(x[:, :shots].reshape((-1,) + self.input_shape), y[:, :shots].reshape(-1),
                            x[:, shots:].reshape((-1,) + self.input_shape), y[:, shots:].reshape(-1)))
        return Task(*[np.stack(parts) for parts in zip(*out)])


def toy_config(**changes):
    base = dict(dataset="miniimagenet", baseline="pretrained", metatrain_iterations=0, ways=3, shots=1,
                queries=2, eval_shots=1, eval_queries=1, eval_inner_lr=0.1, eval_inner_steps=3,
                num_filters=8, pretrain_batch_size=16, meta_lr=0.01, pretrain_iterations=30,
                val_interval=10, val_tasks=4, eval_tasks=6, checkpoint_interval=10,
                print_interval=10, log=False, data_dir="/nonexistent")
    return Config(**{**base, **changes})


def test_pretraining_step_lowers_the_loss():
    sampler = ToySampler()
    x, y = sampler.arrays()
    model = pretrained_net.pretrain_model(toy_config(), sampler.input_shape, CLASSES["train"])
    import keras
    step = pretrain.make_train_step(model, keras.optimizers.Adam(0.01))
    data = iter(pretrain.input_pipeline(x, y, 16, seed=0, start=0))
    losses = [float(step(*next(data))["loss"]) for _ in range(60)]
    # 12 classes: chance is ln 12 = 2.48; the class patterns are easy, so it must fall far below.
    assert np.mean(losses[:5]) > 2.0 and np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5]), losses


def test_batches_resume_where_they_stopped():
    whole = pretrain.batch_indices(25, 8, seed=3, start=0)
    first = [next(whole) for _ in range(7)]
    resumed = pretrain.batch_indices(25, 8, seed=3, start=4)
    assert all(np.array_equal(a, next(resumed)) for a in first[4:])
    epoch0 = np.concatenate(first)[:25]  # the first 25 indices are one permutation of the set
    assert sorted(epoch0.tolist()) == list(range(25))


def test_pretrain_checkpoints_keeps_best_and_resumes(tmp_path):
    sampler = ToySampler()
    config = toy_config()
    pretrain.pretrain(config, str(tmp_path), sampler=sampler, arrays=sampler.arrays())
    rows = [json.loads(line) for line in open(tmp_path / "validation.jsonl")]
    best = json.load(open(tmp_path / "best" / "best.json"))
    assert [r["iteration"] for r in rows] == [10, 20, 30]
    assert rows[0]["steps"] == list(range(config.eval_inner_steps + 1))  # every fine-tuning step
    assert best["best_accuracy"] == max(r["best_accuracy"] for r in rows)
    longer = config.replace(pretrain_iterations=40)  # extending a pretraining resumes it
    pretrain.pretrain(longer, str(tmp_path), sampler=sampler, arrays=sampler.arrays())
    rows = [json.loads(line) for line in open(tmp_path / "validation.jsonl")]
    assert [r["iteration"] for r in rows] == [10, 20, 30, 40]
    with pytest.raises(Exception, match="other settings"):  # another network is another run
        pretrain.pretrain(longer.replace(num_filters=4), str(tmp_path), sampler=sampler,
                          arrays=sampler.arrays())
    # its validation fine-tunes all layers: a nearest-neighbour one would choose another best
    with pytest.raises(UserError, match="finetune 'all' -> 'nearest': the validation that chooses"):
        pretrain.pretrain(longer.replace(pretrain_iterations=50, finetune="nearest"), str(tmp_path),
                          sampler=sampler, arrays=sampler.arrays())
    for changes, said in ((dict(patience=20), "--patience stops meta-training"),
                          (dict(strategy="mirrored"), "a pretraining runs on one device")):
        with pytest.raises(UserError, match=said):  # flags it would ignore
            pretrain.pretrain(longer.replace(**changes), str(tmp_path), sampler=sampler,
                              arrays=sampler.arrays())
    assert json.load(open(tmp_path / "pretrain.json"))["classes"] == CLASSES["train"]


def test_a_stored_pretraining_continues_and_is_evaluated_on_another_machine(tmp_path, capsys):
    """Its state in the run store (checkpoint, best/, pretrain.json) is a fresh clone's start."""
    from maml_tf.workdir import snapshot

    sampler, store = ToySampler(), str(tmp_path / "store")
    first = str(tmp_path / "a" / "transfer" / "run")
    pretrain.pretrain(toy_config(pretrain_iterations=20), first, sampler=sampler, arrays=sampler.arrays())
    kept = snapshot.save(first, store)
    assert {"pretrain.json", "best"} <= set(os.listdir(kept))
    evaluated = str(tmp_path / "b" / "transfer" / "run")  # a fresh clone: evaluation first
    config = toy_config(pretrain_iterations=20, run_store=store, eval_tasks=4)
    ours = baselines.evaluate_baseline(config, evaluated, sampler=sampler)
    theirs = baselines.evaluate_baseline(config.replace(run_store=None, eval_dir=str(tmp_path / "e")),
                                         first, sampler=sampler)
    assert ours["metrics"] == theirs["metrics"] and ours["iteration"] == theirs["iteration"]
    again = str(tmp_path / "c" / "transfer" / "run")
    pretrain.pretrain(config.replace(pretrain_iterations=30), again, sampler=sampler, arrays=sampler.arrays())
    assert "continuing " + again + " from its stored state" in capsys.readouterr().out
    rows = [json.loads(line)["iteration"] for line in open(os.path.join(again, "validation.jsonl"))]
    assert rows == [10, 20, 30]


@pytest.fixture(scope="module")
def pretrained_dir(tmp_path_factory):
    """One toy pretraining (30 steps) shared by the tests that only read it."""
    path, sampler = tmp_path_factory.mktemp("pretrained"), ToySampler()
    pretrain.pretrain(toy_config(), str(path), sampler=sampler, arrays=sampler.arrays())
    return path


def _pretrained_eval(tmp_path, **changes):
    sampler = ToySampler()
    ev = baselines.TransferEval(toy_config(**changes), sampler)
    model, _, _ = pretrained_net.restore(toy_config(), str(tmp_path), sampler, None)
    ev.load_backbone(model)
    return ev, model, sampler


def test_head_is_replaced_by_a_fresh_n_way_head(pretrained_dir):
    ev, pretrained, _ = _pretrained_eval(pretrained_dir)
    assert pretrained.output_shape[-1] == CLASSES["train"] and ev.model.output_shape[-1] == 3
    for src, dst in zip(pretrained.layers[:-1], ev.model.layers[:-1]):
        assert all(np.array_equal(a, b) for a, b in zip(src.get_weights(), dst.get_weights()))
    assert all(not np.any(w) for w in ev.model.layers[-1].get_weights())  # zeroed, not copied


def test_head_only_leaves_the_backbone_unchanged(pretrained_dir):
    ev, _, sampler = _pretrained_eval(pretrained_dir, finetune="head")
    task = sampler.sample("test", 1, 1, 2, np.random.default_rng(0))
    learner, theta = ev.learner, ev.learner.weights()
    fast = algorithms.adapt(learner, loss_for("classification", 1, "maml"), theta, task.support_x[0],
                            task.support_y[0], 0.5, 3)
    changed = [not np.array_equal(a, b) for a, b in zip(theta, fast)]
    assert changed == list(learner.inner_mask) and sum(changed) == 2  # head kernel and bias only
    all_mask = baselines.make_learner(ev.model, "all", "batch").inner_mask
    assert sum(all_mask) > 2  # fine-tune all adapts the backbone too


@pytest.mark.parametrize("bn", ["batch", "moving"])
def test_nearest_neighbour_puts_a_support_example_in_its_own_class(pretrained_dir, bn):
    ev, _, sampler = _pretrained_eval(pretrained_dir, finetune="nearest", finetune_bn=bn)
    t = sampler.sample("test", 4, 2, 1, np.random.default_rng(1))
    same = Task(t.support_x, t.support_y, t.support_x, t.support_y)  # the support set as query
    out = ev.curve_fn(2, 2, 0.1, 0)(same)
    assert out["accuracy"].shape == (4, 1) and np.all(out["accuracy"].numpy() == 1.0)


def test_baseline_files_have_maml_format(pretrained_dir):
    """Same JSON keys (plus the baseline's own) and the same CSV header as a MAML evaluation."""
    sampler, tmp_path = ToySampler(), pretrained_dir
    best = json.load(open(tmp_path / "best" / "best.json"))["iteration"]
    for method in ("all", "head", "nearest", "cosine"):
        r = baselines.evaluate_baseline(toy_config(finetune=method, eval_split="test"),
                                        str(tmp_path), sampler=sampler)
        assert r["steps"] == ([0] if method == "nearest" else [0, 1, 2, 3])
        acc = r["metrics"]["accuracy"]["mean"]
        assert len(acc) == len(r["steps"])
        if method in ("all", "head"):  # the zeroed head predicts class 0 everywhere: exactly chance
            assert abs(acc[0] - 1 / 3) < 1e-6 and acc[-1] > acc[0]
        assert r["iteration"] == best  # the validation-chosen checkpoint by default
    stem = tmp_path / f"eval_test_shots1_lr0.1_iter{best}_3way_all_bnbatch"
    maml_keys = {"dataset", "split", "iteration", "num_tasks", "ways", "shots", "queries",
                 "inner_lr", "steps", "eval_seed", "algorithm", "transductive", "metrics"}
    saved = json.load(open(f"{stem}.json"))
    assert maml_keys <= set(saved) and set(saved["metrics"]) == {"loss", "accuracy"}
    assert set(saved["metrics"]["accuracy"]) == set(evaluate.STATS)
    header = next(csv.reader(open(f"{stem}.csv")))
    assert header == ["step"] + [f"{n}_{s}" for n in ("accuracy", "loss") for s in evaluate.STATS]


def test_a_baseline_evaluation_takes_eval_dir_and_refuses_what_it_would_ignore(pretrained_dir, tmp_path):
    sampler, best = ToySampler(), json.load(open(pretrained_dir / "best" / "best.json"))["iteration"]
    elsewhere = tmp_path / "evals"
    config = toy_config(finetune="head", eval_split="test", eval_tasks=4)
    baselines.evaluate_baseline(config.replace(eval_dir=str(elsewhere)), str(pretrained_dir),
                                sampler=sampler)
    assert sorted(os.listdir(elsewhere)) == [f"eval_test_shots1_lr0.1_iter{best}_3way_head_bnbatch.{e}"
                                             for e in ("csv", "json")]  # not into the run
    for changes, said in ((dict(eval_record_steps="0,3"), "--record_steps"),
                          (dict(transductive=False), "--finetune_bn=moving"),
                          (dict(conv=False), "drop --conv=False"),
                          (dict(test_best=True), "takes its best-validation pretrained model already"),
                          (dict(num_filters=16), r"other settings \(num_filters 8 -> 16\)"),
                          (dict(max_pool=True), r"other settings \(max_pool False -> True\)"),
                          (dict(baseline="scratch", test_iter=10), "has no checkpoints")):
        with pytest.raises(UserError, match=said):
            baselines.evaluate_baseline(config.replace(**changes), str(pretrained_dir), sampler=sampler)
    # an evaluation chooses its own fine-tuning and steps; a longer pretraining is the same run
    baselines.evaluate_baseline(config.replace(eval_dir=str(elsewhere), finetune="nearest",
                                               eval_inner_steps=1, pretrain_iterations=90),
                                str(pretrained_dir), sampler=sampler)


def _main(*args):
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "maml_tf.main", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_bad_baseline_flags_are_one_error_line(tmp_path):
    for args, words in ((["--baseline=pretrained", "--datasource=omniglot", "--metatrain_iterations=5",
                          "--print_run_dir"], "metatrain_iterations=0"),
                        (["--baseline=pretrained", "--datasource=sinusoid", "--metatrain_iterations=0"],
                         "image datasets"),
                        (["--baseline=frozen"], "unknown baseline"),
                        # meta-training's flags: accepted, they did nothing and then locked the run
                        (["--baseline=pretrained", "--datasource=omniglot", "--stop_grad",
                          "--meta_lr=0.5", "--print_run_dir"],
                         "--stop_grad, --meta_lr: not read by this run (--datasource=omniglot, "
                         "--baseline=pretrained): a transfer baseline does no meta-training"),
                        (["--baseline=scratch", "--datasource=omniglot", "--train=False",
                          "--algorithm=reptile", "--print_run_dir"], "drop --algorithm=reptile")):
        proc = _main(*args, f"--logdir={tmp_path}")
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-1500:]
        assert proc.stderr.strip().startswith("error:") and words in proc.stderr, proc.stderr
    # a baseline meta-trains nothing: without --metatrain_iterations it is 0, not refused
    proc = _main("--baseline=scratch", "--datasource=omniglot", "--train=False", f"--logdir={tmp_path}",
                 "--print_run_dir")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("omniglot.scratch.conv64"), proc.stderr


def test_a_pretraining_is_not_loaded_as_a_meta_learned_model(pretrained_dir):
    """load/classify/export rebuilt the paper's network and failed on its checkpoints, saying it
    was a user's own model without its model.keras."""
    import maml_tf

    with pytest.raises(UserError, match=r"is a transfer baseline's pretraining \(--baseline="
                                        r"pretrained\), not a meta-learned model"):
        maml_tf.load(str(pretrained_dir))


@needs_data
def test_main_pretrains_and_evaluates_omniglot_like_maml(tmp_path, cache_dir):
    """Through the command line on the real data: pretraining writes a run, --train=False evaluates it
    on the same tasks as MAML's evaluation (same CSV header as a MAML run's file)."""
    common = ["--datasource=omniglot", "--metatrain_iterations=0", f"--logdir={tmp_path}",
              f"--data_dir={DATA_DIR}", f"--cache_dir={cache_dir}", "--num_test_tasks=5",
              "--test_num_updates=2", "--update_lr=0.4", "--update_batch_size=1"]
    pre = common + ["--baseline=pretrained", "--pretrain_iterations=4", "--val_interval=2",
                    "--num_val_tasks=2", "--checkpoint_interval=2", "--print_interval=2"]
    for args in (pre, pre + ["--train=False", "--test_set=True", "--finetune=head"],
                 common + ["--baseline=scratch", "--train=False"]):
        proc = _main(*args)
        assert proc.returncode == 0, proc.stderr[-2000:]
    run = tmp_path / "omniglot.pretrained.bs64.lr0.1.conv64"
    assert json.load(open(run / "pretrain.json"))["classes"] == 4400  # 1,100 characters x 4 rotations
    assert (run / "eval_test_shots1_lr0.4_iter4_5way_head_bnbatch.json").exists() or \
        list(run.glob("eval_test_*_5way_head_bnbatch.json")), list(run.iterdir())
    assert list((tmp_path / "omniglot.scratch.conv64").glob("eval_val_shots1_lr0.4_iter0_5way_all_bnbatch.csv"))


def test_pretraining_on_a_folder_learns_and_fine_tunes(tmp_path):
    """--baseline=pretrained on a user's folder: the meta-train classes' rows of its one array
    (never copied out of the memory map), then fine-tuned on its test classes above chance."""
    from folder_helpers import write_tree

    config = toy_config(dataset="folder", data_dir=write_tree(tmp_path / "data"),
                        cache_dir=str(tmp_path / "cache"), folder_split="0.5,0.25,0.25",
                        pretrain_iterations=40, pretrain_lr=0.05, val_interval=20, eval_tasks=20,
                        queries=1, eval_queries=1, eval_inner_lr=0.4)
    from maml_tf import datasets

    images, labels = pretrain.supervised_arrays(config, datasets.get_sampler(config))
    assert isinstance(images, pretrain.SplitRows) and images.shape == (36, 20, 20, 3)
    assert np.bincount(labels).tolist() == [6] * 6
    pretrain.pretrain(config, str(tmp_path / "run"))
    r = baselines.evaluate_baseline(config.replace(eval_split="test"), str(tmp_path / "run"))
    assert r["metrics"]["accuracy"]["mean"][-1] > 1 / 3 + 0.2, r["metrics"]["accuracy"]["mean"]
    write_tree(tmp_path / "more", classes=1)  # a class added: the folder would split anew
    os.rename(tmp_path / "more" / "class00", tmp_path / "data" / "a_new")
    for attempt in (lambda: baselines.evaluate_baseline(config, str(tmp_path / "run")),
                    lambda: pretrain.pretrain(config.replace(pretrain_iterations=60), str(tmp_path / "run"))):
        with pytest.raises(UserError, match=r"was trained on other classes than the data holds now \(added: a_new"):
            attempt()
