"""Supervised pretraining of the dataset's network over all meta-train classes (the transfer baseline), checkpointed and resumable."""

import dataclasses
import os
from typing import Dict, Iterator, Tuple

import keras
import numpy as np
import tensorflow as tf

from maml_tf.datasets import class_names_by_split, get_sampler
from maml_tf.experiment import loop
from maml_tf.transfer import baselines, pretrained as pretrained_net
from maml_tf.workdir import class_record, rundir
from maml_tf.workdir.checkpoints import Checkpointer
from maml_tf.experiment.config import Config
from maml_tf.experiment.run_id import pretraining_fields
from maml_tf.experiment.progress import ProgressLog
from maml_tf.workdir.runinfo import SegmentLog
from maml_tf.errors import UserError


CLASSES_ARE = {"omniglot": "meta-train character x rotation (1,100 x 4)",
               "miniimagenet": "the 64 meta-train classes"}  # else: its meta-train classes


def omniglot_arrays(sampler) -> Tuple[np.ndarray, np.ndarray]:
    """The 1,100 meta-train characters x 4 rotations as 4,400 classes (as Vinyals et al.), 20
    drawings each: (uint8 [88000, 28, 28, 1], int32 labels)."""
    chars = np.concatenate(sampler.groups["train"])
    base = sampler.images[chars]  # [C, 20, 28, 28]
    rotated = np.stack([np.rot90(base, k, axes=(2, 3)) for k in range(4)], axis=1)  # [C, 4, 20, ..]
    labels = np.repeat(np.arange(len(chars) * 4, dtype=np.int32), base.shape[1])
    return np.ascontiguousarray(rotated.reshape((-1,) + base.shape[2:] + (1,))), labels


class SplitRows:
    """Rows of a class-grouped image array (a folder's or TFDS memory map holds every split):
    `view[i]` reads `images[rows[i]]`, so the meta-train split is never copied out."""

    def __init__(self, images: np.ndarray, rows: np.ndarray):
        self.images, self.rows = images, rows
        self.shape = (len(rows),) + tuple(images.shape[1:])

    def __getitem__(self, i):
        return self.images[self.rows[i]]


def split_arrays(sampler) -> Tuple[np.ndarray, np.ndarray]:
    """The meta-train classes' images (uint8, as they are: miniImageNet's [38400, 84, 84, 3]; a
    folder's or TFDS dataset's rows of its array) and their labels 0..classes-1."""
    data = sampler.split("train")
    labels = np.repeat(np.arange(len(data.classes), dtype=np.int32), data.counts)
    if len(data.images) == len(labels):  # the array is the split's alone
        return data.images, labels
    rows = np.concatenate([np.arange(s, s + c) for s, c in zip(data.starts, data.counts)])
    return SplitRows(data.images, rows), labels


def supervised_arrays(config: Config, sampler) -> Tuple[np.ndarray, np.ndarray]:
    """(images, labels) of every meta-train class, per dataset; no augmentation."""
    if config.dataset == "omniglot":
        return omniglot_arrays(sampler)
    if hasattr(sampler, "split"):  # miniImageNet, a folder, a TFDS dataset
        return split_arrays(sampler)
    raise UserError(f"no supervised pretraining for {config.dataset}")


def batch_indices(n: int, batch_size: int, seed: int, start: int) -> Iterator[np.ndarray]:
    """Index batches start+1, start+2, ... of epochs shuffled by RNG (seed, epoch): a resumed run
    sees exactly the batches an uninterrupted one would."""
    step = start
    while True:
        first = step * batch_size
        epoch, offset = divmod(first, n)
        order = np.random.default_rng([seed, epoch]).permutation(n)
        idx = order[offset:offset + batch_size]
        if len(idx) < batch_size:  # an epoch's tail: take the rest from the next epoch
            nxt = np.random.default_rng([seed, epoch + 1]).permutation(n)
            idx = np.concatenate([idx, nxt[:batch_size - len(idx)]])
        yield idx
        step += 1


def input_pipeline(images, labels, batch_size: int, seed: int, start: int) -> tf.data.Dataset:
    """tf.data: index batches -> gathered from the in-memory uint8 arrays -> float in [0, 1], prefetched."""
    spec = tf.TensorSpec((batch_size,), tf.int64)
    indices = tf.data.Dataset.from_generator(
        lambda: batch_indices(len(labels), batch_size, seed, start), output_signature=spec)

    def gather(idx):
        x, y = tf.numpy_function(lambda i: (images[i], labels[i]), [idx], [tf.uint8, tf.int32])
        x = tf.reshape(tf.cast(x, tf.float32) / 255.0, (batch_size,) + images.shape[1:])
        return x, tf.reshape(y, (batch_size,))

    return indices.map(gather, num_parallel_calls=2).prefetch(4)


def make_train_step(model: keras.Model, optimizer):
    """One compiled supervised step on the mean softmax cross-entropy (batch norm in training
    mode, so its moving statistics follow the data)."""

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y),
                                     tf.float32))
        return {"loss": loss, "accuracy": acc}

    return step


def _prepare(config: Config, workdir: str, sampler, arrays):
    """The data, the network and its optimizer, and pretrain.json (what evaluation rebuilds)."""
    sampler = sampler or get_sampler(config)
    images, labels = arrays if arrays is not None else supervised_arrays(config, sampler)
    model = pretrained_net.pretrain_model(config, sampler.input_shape, int(labels.max()) + 1)
    # SGD with momentum: with Adam(1e-3) the 4,400-way Omniglot loss stayed at chance (ln 4400)
    # for 1,700 steps here; Adam moves every class's row by ~lr whatever its tiny gradient.
    optimizer = keras.optimizers.SGD(config.pretrain_lr, momentum=0.9)
    optimizer.build(model.trainable_variables)  # before a restore, so its slots are restored
    rundir.write_json(os.path.join(workdir, "pretrain.json"), {
        "classes": int(labels.max()) + 1, "images": len(labels),
        "classes_are": CLASSES_ARE.get(config.dataset, "the meta-train classes"),
        "augmentation": "none"})
    print(f"pretraining on {len(labels)} images of {labels.max() + 1} classes", flush=True)
    return sampler, images, labels, model, optimizer


def _check(config: Config):
    config.validate()
    if not config.conv:
        raise UserError("the transfer baselines use the conv network: drop --conv=False")
    if config.pretrain_iterations <= 0:
        raise UserError("--baseline=pretrained needs --pretrain_iterations > 0 (supervised steps)")
    if config.strategy != "default":
        raise UserError(f"--strategy={config.strategy}: a pretraining runs on one device (drop it)")
    if config.patience:
        raise UserError("--patience stops meta-training; a pretraining runs its --pretrain_iterations "
                        "and keeps its best-validation model in best/")


def pretrain(config: Config, workdir: str, sampler=None, arrays=None) -> Dict:
    """`config.pretrain_iterations` supervised steps through the one training loop; validates
    every `val_interval` steps by fine-tuned accuracy on validation tasks and keeps the best in
    `workdir/best/`.

    `sampler` / `arrays` ((images, labels)) replace the configured dataset's (tests)."""
    _check(config)
    fields = pretraining_fields()
    restore = (lambda: loop.restore_stored(config, workdir, fields)) if config.resume else None
    with loop.session(workdir, config, fields, prepare=restore) as stop:
        steps = Pretraining(config, workdir, config.resume, *_prepare(config, workdir, sampler, arrays))
        last = loop.run(steps, steps.start, config.pretrain_iterations, config.checkpoint_interval,
                        config.print_interval, steps.log, stop, steps.ckpt.directory)
        print(summary(config, workdir, steps.start, last, steps.best_row), flush=True)
        return steps.best_row


def summary(config: Config, workdir: str, start: int, last: int, best: Dict) -> str:
    """The line a pretraining ends with: what it did, and the model its evaluation takes."""
    target = config.pretrain_iterations
    line = (f"{workdir} had pretrained {start} iterations already (--pretrain_iterations={target}): "
            "nothing to train" if start >= target else
            f"done: pretraining {start} -> {last} of {target} iterations in {workdir}")
    if not best:
        return line + "; no validation yet, so its evaluation takes the newest checkpoint"
    return (line + f"; best-validation model: iteration {best['iteration']} "
            f"({100 * best['best_accuracy']:.1f}% after {best['best_step']} steps)")


class Pretraining:
    """Supervised pretraining's part of the one loop (`loop.run`)."""

    def __init__(self, config: Config, workdir: str, resume: bool, sampler, images, labels,
                 model, optimizer):
        self.config, self.workdir = config, workdir
        data = class_names_by_split(config, sampler)
        class_record.check_before_restore(workdir, data)
        self.ckpt = Checkpointer(workdir, {"model": model, "optimizer": optimizer},
                                 config.keep_checkpoints)
        self.best = Checkpointer(os.path.join(workdir, "best"), {"model": model}, 1)
        self.start = loop.resume_point(self.ckpt, workdir, resume, workdir)
        class_record.record(workdir, data)  # checked above if it resumes
        self.model, self.evaluator = model, baselines.TransferEval(config, sampler)
        self.train_step, self.log = make_train_step(model, optimizer), ProgressLog(config, workdir)
        self.segments = SegmentLog(workdir, self.start, settings=dataclasses.asdict(config))
        self.best_row = pretrained_net.read_best(workdir)
        self.data = iter(input_pipeline(images, labels, config.pretrain_batch_size, config.seed,
                                        self.start))

    def phase(self, iteration: int) -> str:
        return "pretrain"

    def step(self, iteration: int):
        return self.train_step(*next(self.data))

    def after(self, iteration: int) -> bool:
        c = self.config
        if c.val_interval and iteration % c.val_interval == 0:
            row = validate(self.evaluator, self.model, self.workdir, iteration)
            if row["best_accuracy"] > self.best_row.get("best_accuracy", -1.0):
                self.ckpt.save(iteration)  # best/ must never point past the resumable checkpoint
                self.best.save(iteration)
                self.best_row = row
                pretrained_net.write_best(self.workdir, row)
        return False

    def save(self, iteration: int) -> str:
        self.ckpt.save(iteration)
        self.segments.update(iteration)
        return self.ckpt.directory


def validate(evaluator, model, workdir: str, iteration: int) -> Dict:
    """Fine-tuned accuracy of the current weights on the fixed validation tasks (validation.jsonl)."""
    c = evaluator.config
    evaluator.load_backbone(model)
    stats = evaluator.evaluate("val", c.val_tasks)
    acc = stats["accuracy"]["mean"]
    row = {"iteration": iteration, "steps": list(range(len(acc))),
           **{k: v["mean"].tolist() for k, v in stats.items()},
           "best_accuracy": float(np.max(acc)), "best_step": int(np.argmax(acc))}
    rundir.append_jsonl(os.path.join(workdir, "validation.jsonl"), row)
    print(f"[val] iter {iteration}  {c.ways}-way {c.eval_shots}-shot, fine-tune {c.finetune}: "
          f"accuracy {acc[0]:.3f} -> {np.max(acc):.3f} (step {row['best_step']})", flush=True)
    return row


