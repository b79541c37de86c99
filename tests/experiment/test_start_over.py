"""Starting over where a run's checkpoints are kept, and resuming without the record of the best
model's validation, are refused: each would let the earlier run's files or a blind model selection
stand in for the new run's."""

import os
import shutil

import pytest

from maml_tf.errors import UserError
from maml_tf.experiment import train
from maml_tf.experiment.config import Config

TOY = dict(dataset="sinusoid", shots=5, queries=5, eval_shots=5, eval_queries=5, norm="None",
           meta_batch_size=4, metatrain_iterations=10, checkpoint_interval=5, print_interval=5,
           val_interval=5, val_tasks=4, eval_tasks=4, eval_inner_steps=2, log=False)


def test_resume_false_is_refused_where_checkpoints_are_kept(tmp_path):
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(Config(**TOY), workdir)
    with pytest.raises(UserError, match=r"--resume=False: .* \(up to iteration 10\), which starting"):
        train.train_and_evaluate(Config(**TOY, resume=False).replace(metatrain_iterations=3), workdir)
    fresh = str(tmp_path / "fresh")  # nothing kept there: --resume=False starts as a new run
    train.train_and_evaluate(Config(**TOY, resume=False), fresh)
    assert "ckpt-10.index" in os.listdir(os.path.join(fresh, "checkpoints"))


def test_a_best_model_without_its_validation_record_is_not_replaced_blindly(tmp_path):
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(Config(**TOY), workdir)
    shutil.move(os.path.join(workdir, "validation.jsonl"), str(tmp_path / "moved.jsonl"))
    with pytest.raises(UserError, match="no record of the best model's validation"):
        train.train_and_evaluate(Config(**TOY).replace(metatrain_iterations=15), workdir)
    shutil.rmtree(os.path.join(workdir, "checkpoints", "best"))  # the way out the message names
    train.train_and_evaluate(Config(**TOY).replace(metatrain_iterations=15), workdir)
    kept = {f.split(".")[0] for f in os.listdir(os.path.join(workdir, "checkpoints", "best"))
            if f.startswith("ckpt-")}
    assert kept and kept <= {"ckpt-15"}  # chosen again, by the validation it has a record of
