"""MAML's successors through the real loop at toy size: each learns, resumes to the same weights and
learned step sizes, evaluates and loads with them (their flags: test_variant_flags)."""

import os

import numpy as np
import pytest
import tensorflow as tf

import maml_tf
from maml_tf import variants
from maml_tf.deploy import savedmodel
from maml_tf.deploy.meta import InputError
from maml_tf.errors import UserError
from maml_tf.experiment import evaluate, train
from maml_tf.workdir.checkpoints import Checkpointer
from maml_tf.experiment import variant_config
from maml_tf.experiment.config import Config
from maml_tf.experiment.run_id import run_name
from maml_tf.experiment.experiment import Experiment, task_batches
from test_run_store import weights as checkpoint_variables

SINE = dict(dataset="sinusoid", shots=10, queries=10, eval_shots=10, eval_queries=10, norm="None",
            inner_lr=0.01, eval_inner_lr=0.01, meta_batch_size=25, meta_lr=0.01, inner_steps=2,
            eval_inner_steps=2, print_interval=100, checkpoint_interval=100, val_interval=0,
            log=False)
VARIANTS = {
    "anil": dict(anil=True, inner_lr=0.1, eval_inner_lr=0.1),  # the head alone needs larger steps
    "meta_sgd": dict(learned_inner_lr="per_param", inner_steps=1),  # its paper's one step
    "lslr": dict(learned_inner_lr="per_layer_step"),
    "msl": dict(multi_step_loss=True, msl_anneal_iterations=500),
    "derivative_order": dict(first_order_iterations=200),
    "cosine": dict(cosine_meta_lr=True, min_meta_lr=1e-4),
    "maml_plus_plus": dict(learned_inner_lr="per_layer_step", multi_step_loss=True,
                           cosine_meta_lr=True, first_order_iterations=200),
    "bnwb": dict(per_step_bn_weights=True, norm="batch_norm"),
}
# Batch norm over 10 support points slows sinusoid MAML down: after 400 iterations plain MAML with
# it cuts the MSE by 11% (3.99 -> 3.54), BNWB by 25% (4.89 -> 3.64; seed 1: 4.75 -> 3.58).
BAR = {"bnwb": 0.85}
# --cosine_meta_lr steps per 500-iteration epoch: a shorter run would keep its rate (refused).
ITERATIONS = {"cosine": 1000, "maml_plus_plus": 1000}


def trained(tmp_path, iterations, **settings):
    config = Config(**{**SINE, "metatrain_iterations": iterations, **settings})
    run = str(tmp_path / run_name(config))
    train.train_and_evaluate(config, run)
    exp = Experiment(config)
    Checkpointer(run, exp.state()).restore_latest()
    return config, run, exp


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_each_variant_learns_to_adapt_on_sinusoid(tmp_path, name):
    config, _, exp = trained(tmp_path, ITERATIONS.get(name, 400), **VARIANTS[name])
    loss = evaluate.evaluate_learner(exp, "test", 100, 10, 10, config.inner_lr, config.inner_steps,
                                     seed=7)["loss"]["mean"]
    # At initialisation the training's inner steps change the MSE by a few percent at most;
    # after 400 meta-iterations of any variant they cut it by 40% at least, the bar of MAML's
    # own test (measured: 3.3 -> 1.0 for ANIL, 3.5 -> 1.7 for Meta-SGD), batch norm aside.
    assert loss[-1] < BAR.get(name, 0.6) * loss[0], loss
    if exp.inner_rates is not None:  # the step sizes moved away from --update_lr
        assert max(np.abs(a - 0.01).max() for a in exp.inner_rates.arrays() if a is not None) > 1e-3
    if config.cosine_meta_lr:  # annealed: at --min_meta_lr after the last of its 2 epochs
        assert float(exp.optimizer.learning_rate) == pytest.approx(config.min_meta_lr, rel=1e-5)
    if exp.step_vars is not None:  # step 1's batch-norm offsets moved away from step 0's
        own = [w.numpy() for w, m in zip(exp.learner.trainable_variables, exp.step_vars.mask) if m]
        assert max(np.abs(p[0] - w).max() for p, w in zip(exp.step_vars.arrays_learned(), own)) > 1e-3


@pytest.mark.parametrize("settings", [
    dict(learned_inner_lr="per_layer_step", multi_step_loss=True, first_order_iterations=25),
    dict(anil=True, learned_inner_lr="per_param"),
    dict(per_step_bn_weights=True, norm="batch_norm", multi_step_loss=True)])
def test_a_resumed_run_ends_with_the_same_weights_and_learned_rates(tmp_path, settings):
    toy = dict(meta_batch_size=4, shots=5, queries=5, checkpoint_interval=10, **settings)
    _, whole, first = trained(tmp_path / "a", 30, **toy)
    trained(tmp_path / "b", 20, **toy)  # stopped at 20, before the switch to second order at 25
    _, resumed, exp = trained(tmp_path / "b", 30, **toy)
    a, b = checkpoint_variables(whole), checkpoint_variables(resumed)
    assert a.keys() == b.keys()
    for name in a:  # every variable: weights, learned rates or parameters, optimizer slots
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert len(exp.meta_variables) > len(exp.learner.trainable_variables)  # restored as such, too
    for x, y in zip(first.meta_variables, exp.meta_variables):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    assert int(exp.optimizer.iterations) == 30


def test_a_cosine_run_too_short_to_anneal_says_so(tmp_path):
    """Its rate steps per 500-iteration epoch: 500 iterations train at --meta_lr alone, 501 do
    not (extending a cosine run is refused by its identity: test_run_identity)."""
    said = "over 500 iterations the meta learning rate stays --meta_lr"
    assert any(said in line for line in variant_config.notices(Config(**{**SINE, "metatrain_iterations": 500, "cosine_meta_lr": True})))
    assert not variant_config.notices(Config(**{**SINE, "metatrain_iterations": 501, "cosine_meta_lr": True}))
    assert float(variants.EpochCosine(1e-3, 1e-5, 501)(500)) < 0.999e-3  # its last step anneals
    assert float(variants.EpochCosine(1e-3, 1e-5, 500)(499)) == pytest.approx(1e-3)


def test_a_checkpoint_of_rates_in_the_old_units_is_refused_not_read_as_1_over_n(tmp_path):
    """Before 188179f a checkpoint held the rates themselves; read now, each would be 1/N of it."""
    from maml_tf.inner_rates import InnerRates

    class OldRates(tf.Module):
        def __init__(self):
            super().__init__(name="inner_rates")
            self.rates = [tf.Variable(np.array([0.01], np.float32))]

    model = tf.Module()
    Checkpointer(str(tmp_path), {"model": model, "inner_rates": OldRates()}).manager.save(1)
    weight = tf.Variable(tf.ones(3))
    rates = InnerRates([weight], [True], "per_layer_step", 0.01, 1, unit=5)
    with pytest.raises(UserError, match="written before maml_tf held them in a mean loss's units"):
        Checkpointer(str(tmp_path), {"model": model, "inner_rates": rates}).restore_latest()


@pytest.mark.parametrize("settings", [dict(anil=True, learned_inner_lr="per_layer_step"),
                                      dict(learned_inner_lr="per_param", norm="batch_norm",
                                           per_step_bn_weights=True)])
def test_evaluation_load_and_export_adapt_with_what_the_run_learned(tmp_path, settings):
    config, run, exp = trained(tmp_path, 20, checkpoint_interval=10, meta_batch_size=4, shots=5,
                               queries=5, **settings)
    result = evaluate.evaluate_checkpoint(config.replace(eval_tasks=8), run)
    assert result["iteration"] == 20
    stored = exp.inner_rates.arrays()
    assert [a is None for a in stored] == [not m for m in exp.learner.inner_mask]
    if config.anil:
        assert sum(exp.learner.inner_mask) == 2  # the head's kernel and bias
    params = exp.step_vars.arrays() if exp.step_vars is not None else None
    rng = np.random.default_rng(0)
    x, y, q = rng.uniform(-5, 5, (5, 1)), rng.normal(size=(5, 1)), rng.uniform(-5, 5, (7, 1))
    outputs = []
    for path in (run, os.path.join(run, "model.keras")):
        meta = maml_tf.load(path)
        assert meta.learner.inner_mask == exp.learner.inner_mask
        for ours, theirs in zip(meta.rates.values, stored):
            assert (ours is None and theirs is None) or np.array_equal(ours.numpy(), theirs)
        assert (meta.step_params is None) == (params is None)
        for ours, theirs in zip(meta.step_params.values if params else [], params or []):
            assert (ours is None and theirs is None) or np.array_equal(ours.numpy(), theirs)
        outputs.append(meta.predict(x, y, q, steps=2))
        with pytest.raises(InputError, match="learned step sizes"):
            meta.predict(x, y, q, inner_lr=0.5)
    np.testing.assert_array_equal(outputs[0], outputs[1])
    # With the learned rates, not --update_lr: another rate gives another prediction.
    fixed = maml_tf.load(run)
    fixed.rates = None
    assert not np.allclose(fixed.predict(x, y, q, steps=2), outputs[0])
    # The SavedModel adapts with them too, outside maml_tf.
    saved = savedmodel.export(maml_tf.load(run), str(tmp_path / "saved"), shots=5, steps=2)
    signature = tf.saved_model.load(saved).signatures[savedmodel.SIGNATURE]
    served = signature(**{k: tf.constant(v, tf.float32) for k, v in
                          dict(support_x=x, support_y=y, query_x=q).items()})["outputs"]
    np.testing.assert_allclose(served.numpy(), outputs[0], rtol=1e-5, atol=1e-6)
    # A learned array of another shape in the file: one error, not a traceback inside the inner
    # loop (per-parameter rates) nor an unread extra step (per-layer-step ones).
    damages = [("maml_tf/inner_rates.npz", "learned step sizes")]
    damages += [("maml_tf/step_params.npz", "per-step batch-norm parameters")] if params else []
    for entry, what in damages:
        damaged = str(tmp_path / f"damaged_{what.split()[0]}.keras")
        _rewrite_first_array(os.path.join(run, "model.keras"), damaged, entry)
        with pytest.raises(UserError, match=f"is damaged: its {what} do not match the network's weights"):
            maml_tf.load(damaged)


def _rewrite_first_array(src: str, dst: str, entry: str):
    """A copy of the .keras file `src` whose npz `entry` has its first array one element longer."""
    import io
    import zipfile

    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for item in old.infolist():
            data = old.read(item.filename)
            if item.filename == entry:
                arrays = dict(np.load(io.BytesIO(data)))
                first = sorted(arrays, key=lambda k: int(k[1:]))[0]
                arrays[first] = np.append(arrays[first], arrays[first].ravel()[:1])
                buffer = io.BytesIO()
                np.savez(buffer, **arrays)
                data = buffer.getvalue()
            new.writestr(item, data)


def test_the_best_validation_model_keeps_its_learned_rates(tmp_path):
    config, run, exp = trained(tmp_path, 20, learned_inner_lr="per_param", inner_steps=1,
                               val_interval=10, val_tasks=4, checkpoint_interval=10,
                               meta_batch_size=4, shots=5, queries=5)
    iteration = Checkpointer(run, exp.state()).best_iteration()
    best = checkpoint_variables(run, os.path.join("checkpoints", "best"))
    then = tf.train.load_checkpoint(os.path.join(run, "checkpoints", f"ckpt-{iteration}"))
    rates = [k for k in best if k.startswith("inner_rates/")]
    assert len(rates) == len(exp.inner_rates.rates) + 1  # and their unit (held_unit)
    for k in rates:
        np.testing.assert_array_equal(best[k], then.get_tensor(k))
    assert evaluate.evaluate_checkpoint(config.replace(eval_tasks=8, test_best=True), run)["iteration"] == iteration


def test_grad_clip_clips_the_network_and_its_per_step_batch_norm_not_the_learned_rates():
    import keras
    from maml_tf.experiment import distribute

    weight, rate, offset = tf.Variable([0.0]), tf.Variable([0.0]), tf.Variable([0.0])
    distribute.apply_mean(keras.optimizers.SGD(1.0), [tf.constant([5.0])] * 3, [weight, rate, offset],
                          grad_clip=1.0, clipped=[True, False, True])
    assert [float(v[0]) for v in (weight, rate, offset)] == [-1.0, -5.0, -1.0]
    # MAML++ clamps its classifier's parameters, its per-step batch-norm weights among them.
    exp = Experiment(Config(**{**SINE, "learned_inner_lr": "per_layer_step", "norm": "batch_norm",
                               "per_step_bn_weights": True, "grad_clip": 10.0}))
    n, r, p = (len(exp.learner.trainable_variables), len(exp.inner_rates.rates),
               len(exp.step_vars.params))
    assert r and p and exp.clipped == [True] * n + [False] * r + [True] * p


def test_the_phase_follows_the_meta_updates_done():
    assert variants.phase(0, False, 200, 500) == (True, True)
    assert variants.phase(199, False, 200, 500) == (True, True)
    assert variants.phase(200, False, 200, 500) == (False, True)
    assert variants.phase(500, False, 200, 500) == (False, False)
    assert variants.phase(10**6, True, 0, 0) == (True, False)


# The replicas of MAML++'s parts and ANIL learn the one device's weights and rates: in
# test_distribute.py, in its two-CPU-device process.


def test_a_phased_step_is_traced_once_per_phase():
    exp = Experiment(Config(**{**SINE, "first_order_iterations": 2, "meta_batch_size": 4}))
    step = exp.make_train_step(2)
    batches = task_batches(exp.sampler, "train", 4, 10, 10, seed=0, start=0)
    for _ in range(5):
        step(next(batches))
    assert step.experimental_get_tracing_count() == 2  # first order, then second
    assert int(exp.optimizer.iterations) == 5


def test_a_classification_runs_learned_rates_move_in_mean_loss_units(small):
    """5-way: the rates are held as 5 x the step size (MAML++'s units), so one outer Adam step of
    meta_lr changes each by about meta_lr / 5, not by meta_lr (5 times MAML++'s relative pace)."""
    config = Config(dataset="miniimagenet", data_dir=small, ways=5, shots=1, queries=1,
                    meta_batch_size=2, num_filters=4, inner_lr=0.01, inner_steps=1, meta_lr=1e-3,
                    learned_inner_lr="per_layer_step", log=False)
    exp = Experiment(config)
    before = [r.numpy() for r in exp.rates().learned()]
    exp.make_train_step(1)(next(task_batches(exp.sampler, "train", 2, 1, 1, seed=0, start=0)))
    moved = np.concatenate([np.abs(r.numpy() - b) for r, b in zip(exp.rates().learned(), before)])
    assert np.all(before[0] == 0.01) and moved.max() <= 1.01e-3 / 5 and moved.max() > 1e-3 / 10
