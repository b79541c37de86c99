"""Test-time transfer baselines on MAML's evaluation tasks: fine-tune all or the head only, nearest neighbour, cosine classifier."""

import os
from typing import Dict

import keras
import tensorflow as tf

from maml_tf import evaluation, metrics, models
from maml_tf.datasets import class_names_by_split, get_sampler
from maml_tf.workdir import class_record, identity, rundir, snapshot
from maml_tf.experiment import evaluate
from maml_tf.experiment.run_id import BASELINE_NETWORK_FIELDS
from maml_tf.experiment.config import Config
from maml_tf.experiment.choices import loss_for
from maml_tf.errors import UserError
from maml_tf.transfer import pretrained as pretrained_net
from maml_tf.types import Task

COSINE_SCALE = 10.0  # logits = scale * cos(feature, class weight); Chen et al. use a fixed scale too


def head_mask(model: keras.Model) -> list:
    """True only for the last layer's (the classifier's) trainable variables."""
    head = {id(v) for v in model.layers[-1].trainable_variables}
    return [id(v) in head for v in model.trainable_variables]


def feature_model(model: keras.Model) -> keras.Model:
    """The network without its classifier (shares its layers): pooled / flattened features."""
    return keras.Model(model.inputs, model.layers[-2].output, name="features")


def make_learner(model: keras.Model, finetune: str, bn: str) -> models.Learner:
    """The Learner each baseline adapts: all weights but the norm offsets (MAML's mask), the head
    only, or (nearest, cosine) the feature extractor, with batch or moving norm statistics."""
    training = bn == "batch"
    if finetune == "all":
        return models.Learner(model, training=training)
    if finetune == "head":
        return models.Learner(model, inner_mask=head_mask(model), training=training)
    return models.Learner(feature_model(model), training=training)


def load_backbone(pretrained: keras.Model, model: keras.Model):
    """Copies every layer but the classifier from `pretrained` into `model` and zeroes `model`'s
    fresh N-way head (so step 0 is chance, and the first steps train the head from nothing)."""
    for src, dst in zip(pretrained.layers[:-1], model.layers[:-1]):
        dst.set_weights(src.get_weights())
    for v in model.layers[-1].weights:
        v.assign(tf.zeros_like(v))


def _l2n(x):
    return tf.math.l2_normalize(x, axis=-1)


def _nearest_logits(fs, ys, fq, ways):
    """-(squared distance to the nearest support example of each class): argmax is 1-NN."""
    d2 = tf.reduce_sum(tf.square(fq[:, None, :] - fs[None, :, :]), axis=-1)  # [n_q, n_s]
    member = tf.one_hot(ys, ways, on_value=True, off_value=False)  # [n_s, ways]
    masked = tf.where(member[None], d2[:, :, None], tf.constant(float("inf"), d2.dtype))
    return -tf.reduce_min(masked, axis=1)


def feature_curve(learner, loss_fn, tasks: Task, ways: int, inner_lr: float, steps: int,
                  method: str) -> Dict[str, tf.Tensor]:
    """{loss, accuracy: [tasks, steps + 1]} of nearest neighbour (steps 0) or a cosine classifier
    initialised at the class means of the support features and trained by SGD on the support set."""
    weights = learner.weights()

    def per_task(task: Task):
        fs, fq = learner(weights, task.support_x), learner(weights, task.query_x)
        if method == "nearest":
            logits = _nearest_logits(fs, task.support_y, fq, ways)
            return {"loss": loss_fn(task.query_y, logits)[None],
                    "accuracy": metrics.accuracy(task.query_y, logits)[None]}
        fs, fq = _l2n(fs), _l2n(fq)
        w = _l2n(tf.matmul(tf.one_hot(task.support_y, ways, dtype=fs.dtype), fs, transpose_a=True))
        curve = {"loss": [], "accuracy": []}
        for step in range(steps + 1):
            logits = COSINE_SCALE * tf.matmul(fq, _l2n(w), transpose_b=True)
            curve["loss"].append(loss_fn(task.query_y, logits))
            curve["accuracy"].append(metrics.accuracy(task.query_y, logits))
            if step < steps:
                with tf.GradientTape() as tape:
                    tape.watch(w)
                    support = COSINE_SCALE * tf.matmul(fs, _l2n(w), transpose_b=True)
                    loss = loss_fn(task.support_y, support)
                w = w - inner_lr * tape.gradient(loss, w)
        return {k: tf.stack(v) for k, v in curve.items()}

    n = 1 if method == "nearest" else steps + 1
    signature = {k: tf.TensorSpec((n,), weights[0].dtype) for k in ("loss", "accuracy")}
    return tf.map_fn(per_task, tasks, fn_output_signature=signature)


class TransferEval:
    """The N-way network on pretrained (or random) weights, evaluated through MAML's
    `evaluate.evaluate_learner`: it offers the same `config`, `sampler` and `curve_fn`."""

    def __init__(self, config: Config, sampler):
        self.config, self.sampler = config, sampler
        self.model = models.conv_net(sampler.input_shape, config.ways, config.num_filters,
                                     config.max_pool, config.norm, seed=config.seed)
        self.learner = make_learner(self.model, config.finetune, config.finetune_bn)
        self.metric_fns = metrics.make_metrics("classification")
        self._curve_fns = {}

    def load_backbone(self, pretrained: keras.Model):
        load_backbone(pretrained, self.model)

    def steps(self) -> int:
        return 0 if self.config.finetune == "nearest" else self.config.eval_inner_steps

    def evaluate(self, split: str, num_tasks: int) -> Dict[str, Dict]:
        c = self.config
        return evaluate.evaluate_learner(self, split, num_tasks, c.eval_shots, c.eval_queries,
                                         c.eval_inner_lr, self.steps(), c.eval_seed)

    def curve_fn(self, shots: int, queries: int, inner_lr: float, steps: int, record_steps=None):
        """As `Experiment.curve_fn`: arrays at `record_steps` (None: every step 0..steps)."""
        record = tuple(sorted(set(range(steps + 1) if record_steps is None else record_steps)))
        key = (shots, queries, inner_lr, steps, record)
        if key not in self._curve_fns:
            self._curve_fns[key] = self._make_curve(shots, queries, inner_lr, steps, list(record))
        return self._curve_fns[key]

    def _make_curve(self, shots, queries, inner_lr, steps, record):
        x = tuple(self.sampler.input_shape)
        ways, method, learner = self.config.ways, self.config.finetune, self.learner
        loss_fn = loss_for("classification", shots, "maml")  # MAML's loss: step sizes mean the same
        spec = Task(tf.TensorSpec((None, ways * shots) + x, tf.float32),
                    tf.TensorSpec((None, ways * shots), tf.int32),
                    tf.TensorSpec((None, ways * queries) + x, tf.float32),
                    tf.TensorSpec((None, ways * queries), tf.int32))

        @tf.function(input_signature=[spec])
        def curve(tasks):
            if method == "nearest":  # no steps: its one value is step 0's
                return feature_curve(learner, loss_fn, tasks, ways, inner_lr, steps, method)
            if method == "cosine":  # a cheap head: every step is computed, the recorded kept
                out = feature_curve(learner, loss_fn, tasks, ways, inner_lr, steps, method)
                return {k: tf.gather(v, record, axis=1) for k, v in out.items()}
            return evaluation.adaptation_curve(learner, loss_fn, learner.weights(), tasks,
                                               inner_lr, steps, self.metric_fns,
                                               record_steps=record)

        return curve


def evaluate_baseline(config: Config, workdir: str, sampler=None) -> Dict:
    """Evaluates `config.finetune` from the pretrained (or random) weights on `config.eval_tasks`
    fixed tasks (the pretrained weights of `config.test_iter`, -1: the validation-chosen best);
    writes eval_<split>_shots<K>_lr<a>_iter<N>_<ways>way_<finetune>_bn<bn>.{json,csv}."""
    config.validate()
    _check_baseline_evaluation(config)
    sampler = sampler or get_sampler(config)
    evaluator, restored, checkpoint = TransferEval(config, sampler), 0, "random initialisation"
    if config.baseline == "pretrained":
        now = identity.as_dict(config)
        if snapshot.restore(config.run_store, workdir, now, BASELINE_NETWORK_FIELDS, "evaluate"):
            print(f"evaluating the stored state of the pretraining in {workdir}", flush=True)
        identity.check(workdir, now, BASELINE_NETWORK_FIELDS, "evaluate")
        class_record.check(workdir, class_names_by_split(config, sampler), "evaluate")
        pretrained, restored, checkpoint = pretrained_net.restore(config, workdir, sampler,
                                                              config.test_iter)
        evaluator.load_backbone(pretrained)
    out = config.eval_dir or workdir
    os.makedirs(out, exist_ok=True)
    stem = os.path.join(out, f"eval_{config.eval_split}_shots{config.eval_shots}"
                             f"_lr{config.eval_inner_lr:g}_iter{restored}_{config.ways}way"
                             f"_{config.finetune}_bn{config.finetune_bn}{evaluate.tasks_suffix(config)}")
    kept = rundir.check_replacing(stem, evaluate.defining(config, workdir))
    stats = evaluator.evaluate(config.eval_split, config.eval_tasks)
    result = {
        "dataset": config.dataset, "split": config.eval_split, "iteration": restored,
        "num_tasks": config.eval_tasks, "ways": config.ways, "shots": config.eval_shots,
        "queries": config.eval_queries, "inner_lr": config.eval_inner_lr,
        "steps": list(range(evaluator.steps() + 1)), **evaluate.defining(config, workdir),
        "algorithm": config.baseline, "transductive": True, "baseline": config.baseline,
        "finetune": config.finetune, "finetune_bn": config.finetune_bn, "checkpoint": checkpoint,
        "metrics": {k: {s: v[s].tolist() for s in evaluate.STATS} for k, v in stats.items()},
    }
    evaluate.print_summary(result)  # first: the numbers are not lost if writing them fails
    if kept:
        print(f"replacing {stem}.json ({kept})", flush=True)
    evaluate.write_result(stem, result)
    return result


def _check_baseline_evaluation(config: Config):
    """UserError for a MAML evaluation setting a baseline's evaluation would ignore."""
    if config.eval_record_steps != Config.eval_record_steps:
        raise UserError("--record_steps chooses the steps of a MAML evaluation; a baseline's "
                        "records every step")
    if not config.transductive:
        raise UserError("--transductive=False is MAML's per-example batch norm; a baseline's is "
                        "--finetune_bn=moving (the pretrained statistics) or batch")
    if not config.conv:
        raise UserError("the transfer baselines use the conv network: drop --conv=False")
    if config.test_best:
        raise UserError("--test_best: a baseline's evaluation takes its best-validation "
                        "pretrained model already (--test_iter=N takes checkpoint N)")
    if config.baseline == "scratch" and config.test_iter not in (None, -1):
        raise UserError("--test_iter: --baseline=scratch has no checkpoints (random weights)")
