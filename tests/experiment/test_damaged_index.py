"""A damaged or missing `checkpoints/checkpoint` index loses nothing: the checkpoints on disk are found, the index rebuilt."""

import json
import os

import pytest

from maml_tf.experiment import evaluate, train

from maml_tf.workdir import ckpt_index, snapshot
from test_rundir import finished_toy_run, run  # noqa: F401  (the finished toy run fixtures)

DAMAGE = {
    "garbage": lambda text: "this is not an index\n",
    "cut_line": lambda text: text[:text.index("all_model_checkpoint_paths") + 12],
    "first_line_only": lambda text: text.splitlines()[0] + "\n",
    "empty": lambda text: "",
    "binary": lambda text: b"\x00\xff\xfe\x81".decode("latin-1"),
    "deleted": None,
    # as it stood after ckpt-10 (the process ended between writing ckpt-20 and the index)
    "stale": lambda text: 'model_checkpoint_path: "ckpt-10"\nall_model_checkpoint_paths: "ckpt-10"\n',
}



def damage(workdir, how):
    index = os.path.join(workdir, "checkpoints", "checkpoint")
    if DAMAGE[how] is None:
        os.remove(index)
        return
    text = open(index).read()
    with open(index, "w", encoding="latin-1") as f:
        f.write(DAMAGE[how](text))


@pytest.mark.parametrize("how", DAMAGE)
def test_resume_continues_from_the_newest_checkpoint_on_disk(run, how, capsys):
    config, workdir = run
    damage(workdir, how)
    capsys.readouterr()
    train.train_and_evaluate(config.replace(metatrain_iterations=30), workdir)
    assert "checkpoints on disk (ckpt-10, ckpt-20)" in capsys.readouterr().err
    segments = json.load(open(os.path.join(workdir, "runinfo.json")))["segments"]
    assert [(s["start_iteration"], s["end_iteration"]) for s in segments] == [(0, 20), (20, 30)]
    rows = [json.loads(line) for line in open(os.path.join(workdir, "validation.jsonl"))]
    assert [r["iteration"] for r in rows] == [10, 20, 30]  # the history before the damage is kept
    assert ckpt_index.listed(os.path.join(workdir, "checkpoints"))[-1].endswith("ckpt-30")


@pytest.mark.parametrize("how", ["garbage", "deleted", "binary", "stale"])
def test_evaluation_and_the_run_store_see_the_checkpoints(run, how, tmp_path_factory):
    config, workdir = run
    store = str(tmp_path_factory.mktemp("store"))
    snapshot.save(workdir, store, quiet=0)
    damage(workdir, how)
    # a run store's older copy is never copied over a run whose index is damaged
    assert snapshot.restore(store, workdir) is None
    result = evaluate.evaluate_checkpoint(config.replace(eval_tasks=4), workdir)
    assert result["iteration"] == 20


def test_a_stale_index_does_not_hide_the_newest_checkpoint_from_the_run_store(run, tmp_path_factory):
    """The store kept ckpt-10 (and, over a copy holding ckpt-20, refused as older: the run's
    newer state stayed on the machine only)."""
    config, workdir = run
    damage(workdir, "stale")
    store = str(tmp_path_factory.mktemp("store"))
    snapshot.save(workdir, store, quiet=0)
    stored = os.path.join(snapshot.store_dir(store, workdir), "checkpoints")
    assert os.path.basename(ckpt_index.newest(stored)) == "ckpt-20"


def test_saving_the_runs_skips_one_that_has_no_checkpoint_yet(run, tmp_path_factory, capsys):
    """`run_experiments.sh --save` passes every run directory: a run just started must not stop
    the others' save (nor the periodic commit after it)."""
    _, workdir = run
    store, fresh = str(tmp_path_factory.mktemp("store")), str(tmp_path_factory.mktemp("fresh"))
    os.makedirs(os.path.join(fresh, "checkpoints"))
    assert snapshot.main(["save", "--store", store, fresh, workdir]) == 0
    out = capsys.readouterr().out
    assert f"skipped {fresh}: no checkpoint yet" in out and f"kept {workdir}" in out


def test_a_directory_of_evaluations_only_is_kept_too(tmp_path):
    """A from-scratch baseline has no checkpoints, only its results: `--save` skipped it, so its
    rows could not be rebuilt on another machine. Kept beside what the store holds already."""
    scratch, store = tmp_path / "logs" / "omniglot.scratch.conv64", tmp_path / "store"
    scratch.mkdir(parents=True)
    (scratch / "eval_test_shots1_lr0.1_iter0_5way_all_bnbatch.json").write_text('{"a": 1}')
    (scratch / "stray.txt").write_text("not a result")
    kept = snapshot.store_dir(str(store), str(scratch))
    os.makedirs(kept)
    with open(os.path.join(kept, "eval_val_shots1_lr0.4_iter0_5way_all_bnbatch.json"), "w") as f:
        f.write('{"b": 2}')  # an earlier machine's
    assert snapshot.main(["save", "--store", str(store), str(scratch)]) == 0
    assert sorted(os.listdir(kept)) == ["eval_test_shots1_lr0.1_iter0_5way_all_bnbatch.json",
                                        "eval_val_shots1_lr0.4_iter0_5way_all_bnbatch.json"]
