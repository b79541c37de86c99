"""An RL run outlives its machine as the supervised ones do: kept in the run store with its
milestone checkpoints, it continues to the weights of an uninterrupted run and is evaluated
at an archived iteration on a machine that never trained it."""

import os
import shutil

import numpy as np
import tensorflow as tf

from maml_tf.rl import evaluate, train
from maml_tf.rl.config import RLConfig
from maml_tf.workdir import snapshot

TOY = dict(hidden=(8, 8), paths=2, horizon=5, meta_batch_size=2, val_interval=0,
           checkpoint_interval=2, print_interval=2, eval_tasks=2, eval_inner_steps=1, log=False)


def weights(run_dir):
    reader = tf.train.load_checkpoint(os.path.join(run_dir, "checkpoints"))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if "model" in k and k.endswith("VARIABLE_VALUE")}


def test_a_stored_rl_run_continues_bitwise_and_is_evaluated_at_a_milestone(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "MILESTONE", 2)
    whole = str(tmp_path / "a" / "rl" / "run")
    train.train(RLConfig(metatrain_iterations=6, **TOY), whole)
    first, store = str(tmp_path / "b" / "rl" / "run"), str(tmp_path / "store")
    train.train(RLConfig(metatrain_iterations=4, **TOY), first)
    kept = snapshot.save(first, store)
    assert sorted(os.listdir(os.path.join(kept, "archive"))) == [
        f"ckpt-{i}.{ext}" for i in (2, 4) for ext in ("data-00000-of-00001", "index")]
    shutil.rmtree(str(tmp_path / "b"))
    again = str(tmp_path / "c" / "rl" / "run")  # a new machine, another logdir
    train.train(RLConfig(metatrain_iterations=6, run_store=store, **TOY), again)
    a, c = weights(whole), weights(again)
    assert a.keys() == c.keys() and len(a) == 7  # three layers' kernels and biases, log_std
    for name in a:
        np.testing.assert_array_equal(a[name], c[name], err_msg=name)
    # Evaluated where it never trained: the stored state, its archived iteration 2 included.
    fresh = str(tmp_path / "d" / "rl" / "run")
    result = evaluate.evaluate_run(RLConfig(metatrain_iterations=4, run_store=store, train=False,
                                            test_iter=2, **TOY), fresh)
    assert result["iteration"] == 2 and os.path.exists(os.path.join(fresh, "archive", "ckpt-4.index"))
