"""maml_tf.load(...).adapt / predict reproduce maml_tf's own evaluation of a task, for MAML and Reptile toy runs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import maml_tf
from maml_tf import algorithms
from maml_tf.errors import UserError
from maml_tf.experiment import evaluate, train
from maml_tf.workdir import model_file
from maml_tf.workdir.checkpoints import Checkpointer
from maml_tf.experiment.config import Config
from maml_tf.experiment.experiment import Experiment
from maml_tf.inner_opt import classes_in_turn, first_order_step, initial_state, support_batch
from maml_tf.types import Task

# Toy runs on the synthetic miniImageNet (tests/conftest.py's `small`): 4 filters, a few iterations.
TOY = dict(dataset="miniimagenet", ways=3, shots=1, queries=1, eval_shots=1, eval_queries=1,
           meta_batch_size=2, metatrain_iterations=3, checkpoint_interval=2, val_interval=0,
           print_interval=1, num_filters=4, max_pool=True, log=False, eval_tasks=2, eval_batch_size=2)
RUNS = {
    "maml": dict(inner_lr=0.05, eval_inner_lr=0.05, inner_steps=1, eval_inner_steps=3),
    "reptile": dict(algorithm="reptile", inner_optimizer="adam", inner_lr=0.01, eval_inner_lr=0.01,
                    inner_steps=2, eval_inner_steps=4, eval_inner_batch_size=2, transductive=False),
}
# K = 5: Reptile's summed loss and MAML's loss / K differ by a factor of 5 (at K = 1 they agree).
RUNS["reptile5"] = {**RUNS["reptile"], "shots": 5, "eval_shots": 5, "eval_inner_batch_size": 5}


@pytest.fixture(scope="module")
def runs(small, full, tmp_path_factory):
    """{name: (Config, run directory)} of the toy runs, trained once for this module."""
    out = {}
    for name, changes in RUNS.items():
        data = full if changes.get("shots", 1) > 1 else small  # `small` has 2 images a class
        config = Config(**{**TOY, **changes, "data_dir": data,
                           "cache_dir": str(tmp_path_factory.mktemp("cache"))})
        workdir = str(tmp_path_factory.mktemp(name))
        train.train_and_evaluate(config, workdir)
        out[name] = (config, workdir)
    return out


def reference(config, workdir):
    """maml_tf's evaluation pieces: the restored Experiment and one validation task, its support
    set with the classes in turn (the order the deploy path gives Reptile's batches)."""
    exp = Experiment(config)
    Checkpointer(workdir, exp.state()).restore_latest()
    tasks = evaluate.sample_tasks(exp.sampler, "val", 1, config.eval_shots, config.eval_queries,
                                  config.eval_seed)
    order = classes_in_turn(tasks.support_y[0]).numpy()
    tasks = tasks._replace(support_x=tasks.support_x[:, order], support_y=tasks.support_y[:, order])
    return exp, Task(*[t[0] for t in tasks]), tasks


@tf.function
def compiled(fn, x, y):
    return fn(x, y)


def reference_weights(exp, task):
    """The adapted weights as maml_tf's evaluation computes them (algorithms / inner_opt), compiled
    as the evaluation is: a conv bias before batch norm has a zero gradient up to round-off, which
    Adam's normalisation turns into full-size steps, so eager and graph round-off differ there."""
    return compiled(lambda x, y: _reference_weights(exp, Task(x, y, None, None)),
                    task.support_x, task.support_y)


def _reference_weights(exp, task):
    c, learner, loss_fn = exp.config, exp.learner, exp.loss(exp.config.eval_shots)
    lr = c.eval_inner_lr if c.algorithm == "reptile" else c.inner_lr
    if c.algorithm == "maml":
        return algorithms.adapt(learner, loss_fn, learner.weights(), task.support_x,
                                task.support_y, lr, c.eval_inner_steps)
    state = initial_state(learner.weights(), exp.moments())
    for step in range(c.eval_inner_steps):
        x, y = support_batch(task, step, c.eval_inner_batch_size)
        state, _, _ = first_order_step(learner, loss_fn, state, x, y, lr, c.inner_optimizer)
    return state.weights


@pytest.mark.parametrize("name", ["maml", "reptile", "reptile5"])
def test_adapt_and_predict_equal_maml_tf_evaluation(runs, name):
    config, workdir = runs[name]
    meta = maml_tf.load(workdir)
    exp, task, tasks = reference(config, workdir)
    assert meta.iteration == 3 and (meta.moments is not None) == (config.algorithm == "reptile")
    adapted = meta.adapt(task.support_x, task.support_y)
    want = reference_weights(exp, task)
    for got, ref in zip(adapted.trainable_variables, want):
        np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)
    # the inner loop moved the weights (else the comparison above would prove little)
    assert max(float(np.abs(a.numpy() - b.numpy()).max())
               for a, b in zip(want, exp.learner.weights())) > 1e-4
    probs = meta.predict(task.support_x, task.support_y, task.query_x)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # the evaluation's query loss after the last step = the run's loss of these probabilities
    # (cross-entropy / K for MAML, summed for Reptile)
    curve = exp.curve_fn(config.eval_shots, config.eval_queries, meta.settings.inner_lr,
                         config.eval_inner_steps)(tasks)
    xent = -np.log(probs[np.arange(len(task.query_y)), task.query_y]).sum()
    if config.algorithm == "maml":
        xent /= config.eval_shots
    np.testing.assert_allclose(xent, curve["loss"].numpy()[0, -1], rtol=1e-4)
    if config.transductive:  # the plain Keras model, given the query set as one batch
        np.testing.assert_allclose(keras.ops.softmax(adapted(task.query_x)).numpy(), probs,
                                   rtol=1e-4, atol=1e-6)


def test_reptile_predictions_do_not_depend_on_the_support_set_being_grouped_by_class(runs):
    """Reptile adapts on batches of the support set: given grouped by class (as a user's folders
    give it), each batch would hold one class; the deploy path takes the classes in turn."""
    meta = maml_tf.load(runs["reptile5"][1])
    _, task, _ = reference(*runs["reptile5"])  # its support set: the classes in turn
    grouped = np.argsort(task.support_y, kind="stable")  # each class's examples in the same order
    mixed = np.arange(len(task.support_y))
    a, b = (meta.predict(task.support_x[o], task.support_y[o], task.query_x) for o in (grouped, mixed))
    assert meta.settings.batch_size == 5 < len(task.support_y) and len(set(task.support_y[:5])) == 3
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_the_run_writes_a_keras_model_that_loads_back_the_same(runs, tmp_path):
    config, workdir = runs["reptile"]
    path = f"{workdir}/{model_file.MODEL_FILE}"
    network = keras.models.load_model(path)  # a plain Keras model (maml_tf.models is imported)
    from_run, from_file = maml_tf.load(workdir), maml_tf.load(path)
    for a, b in zip(network.trainable_variables, from_run.model.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(from_file.moments.v, from_run.moments.v):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert from_file.iteration == 3 and from_file.settings == from_run.settings
    rng = np.random.default_rng(0)
    x, y, q = rng.random((6, 84, 84, 3)), np.repeat([0, 1, 2], 2), rng.random((4, 84, 84, 3))
    np.testing.assert_allclose(from_file.predict(x, y, q), from_run.predict(x, y, q), rtol=1e-5)
    adapted = from_file.adapt(x, y)
    adapted.save(tmp_path / "adapted.keras")  # the adapted model is itself a saveable Keras model
    again = keras.models.load_model(tmp_path / "adapted.keras")
    np.testing.assert_allclose(again.predict(q, verbose=0), adapted.predict(q, verbose=0), rtol=1e-5)


@pytest.mark.parametrize("change, message", [
    (dict(support_x=np.zeros((3, 28, 28, 1))), "support_x has shape (3, 28, 28, 1); the model takes [examples, 84, 84, 3]"),
    (dict(support_y=np.array([0, 1, 5])), "support_y has class ids 0..5 but the model's head has 3 classes"),
    (dict(support_y=np.eye(3)), "support_y must be 3 integer class ids"),
    (dict(query_x=np.zeros((2, 84, 84))), "query_x has shape (2, 84, 84)"),
    (dict(support_x=np.full((3, 84, 84, 3), np.nan)), "support_x has NaN or infinite values"),
])
def test_inputs_that_do_not_fit_get_one_clear_error(runs, change, message):
    meta = maml_tf.load(runs["maml"][1])
    args = dict(support_x=np.zeros((3, 84, 84, 3)), support_y=np.array([0, 1, 2]),
                query_x=np.zeros((2, 84, 84, 3)))
    with pytest.raises(ValueError) as err:
        meta.predict(**{**args, **change})
    assert str(err.value).startswith(message) and isinstance(err.value, UserError)


def test_load_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(UserError, match="is not a run directory"):
        maml_tf.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot read"):
        maml_tf.load(tmp_path)
    (tmp_path / "x.keras").write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot read"):
        maml_tf.load(tmp_path / "x.keras")


def test_a_damaged_config_json_loads_from_its_copy_as_evaluation_does(runs, tmp_path, capsys):
    """Training keeps a copy beside the checkpoints: load and export read it, as --train=False
    does, and say so (not that the file, which a load leaves alone, will be rewritten)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(runs["maml"][1], run)
    (run / "config.json").write_text('{"a": ')
    assert maml_tf.load(run).settings == maml_tf.load(runs["maml"][1]).settings
    assert f"{run / 'config.json'} is unreadable (JSONDecodeError); ignored: its copy in " \
        "checkpoints/ or runinfo.json is read instead" in capsys.readouterr().err
    assert (run / "config.json").read_text() == '{"a": '
