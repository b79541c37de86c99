"""Times one benchmark configuration in this process: the real training step on synthetic tasks.

`measure` runs `experiment.Experiment(config, sampler).make_train_step(...)` fed by
`experiment.task_batches`, exactly as `train_and_evaluate` does, and reads the metrics back to Python
as its progress log does. Images come from `SyntheticImages`, an in-memory TaskSampler.
"""

import os
import resource
import statistics
import time
from typing import Dict, NamedTuple, Optional

import numpy as np

from maml_tf.types import Task


class Bench(NamedTuple):
    """One benchmark configuration: Config fields, image shape (None: sinusoid), matching peer run."""

    config: Dict
    image_shape: Optional[tuple]
    peer_config: Optional[str]  # the peers' --config name (same maths), or None


_OMNIGLOT = dict(dataset="omniglot", shots=1, num_filters=64, norm="batch_norm")
# The peers' mini_5w1s / mini_5w5s: 84x84x3, 32 filters, 2x2 max-pool, 5 steps of lr 0.01, 15 queries, clip 10.
_MINI = dict(dataset="miniimagenet", ways=5, queries=15, inner_steps=5, inner_lr=0.01, num_filters=32,
             max_pool=True, grad_clip=10.0, norm="batch_norm")
BENCHES = {
    "omniglot_5w1s_q1_o2": Bench(dict(_OMNIGLOT, ways=5, queries=1, meta_batch_size=32,
                                      inner_steps=1, inner_lr=0.4), (28, 28, 1), "5w1s_q1"),
    "omniglot_5w1s_q1_o1": Bench(dict(_OMNIGLOT, ways=5, queries=1, meta_batch_size=32,
                                      inner_steps=1, inner_lr=0.4, first_order=True),
                                 (28, 28, 1), "5w1s_q1"),
    "omniglot_5w1s_q15_o2": Bench(dict(_OMNIGLOT, ways=5, queries=15, meta_batch_size=32,
                                       inner_steps=1, inner_lr=0.4), (28, 28, 1), "5w1s_q15"),
    "omniglot_5w1s_q15_o1": Bench(dict(_OMNIGLOT, ways=5, queries=15, meta_batch_size=32,
                                       inner_steps=1, inner_lr=0.4, first_order=True),
                                  (28, 28, 1), "5w1s_q15"),
    "omniglot_20w1s_q1_o1": Bench(dict(_OMNIGLOT, ways=20, queries=1, meta_batch_size=16,
                                       inner_steps=5, inner_lr=0.1, first_order=True),
                                  (28, 28, 1), "20w1s_q1"),
    "omniglot_20w1s_q1_o2": Bench(dict(_OMNIGLOT, ways=20, queries=1, meta_batch_size=16,
                                       inner_steps=5, inner_lr=0.1), (28, 28, 1), "20w1s_q1"),
    "miniimagenet_5w1s_o2": Bench(dict(_MINI, shots=1, meta_batch_size=4), (84, 84, 3), "mini_5w1s"),
    "miniimagenet_5w1s_o1": Bench(dict(_MINI, shots=1, meta_batch_size=4, first_order=True),
                                  (84, 84, 3), "mini_5w1s"),
    "miniimagenet_5w5s_o2": Bench(dict(_MINI, shots=5, meta_batch_size=2), (84, 84, 3), "mini_5w5s"),
    "miniimagenet_5w5s_o1": Bench(dict(_MINI, shots=5, meta_batch_size=2, first_order=True),
                                  (84, 84, 3), "mini_5w5s"),
    "omniglot_20w5s_q5_o2": Bench(dict(_OMNIGLOT, ways=20, shots=5, queries=5, meta_batch_size=16,
                                       inner_steps=5, inner_lr=0.1), (28, 28, 1), "20w5s_q5"),
    "omniglot_20w5s_q5_o1": Bench(dict(_OMNIGLOT, ways=20, shots=5, queries=5, meta_batch_size=16,
                                       inner_steps=5, inner_lr=0.1, first_order=True),
                                  (28, 28, 1), "20w5s_q5"),
    "sinusoid_o2": Bench(dict(dataset="sinusoid", shots=10, queries=10, meta_batch_size=25,
                              inner_steps=1, inner_lr=0.01, norm="None"), None, None),
}


class SyntheticImages:
    """A TaskSampler over a fixed in-memory pool of random images (`classes` x `per_class`).

    Sampling works as a real image data set's does: `ways` distinct classes per task, distinct
    images per class, labels in [0, ways) in a random order.
    """

    problem = "classification"

    def __init__(self, ways: int, image_shape, classes: int = 40, per_class: int = 20, seed: int = 0):
        self.output_dim, self.input_shape = ways, tuple(image_shape)
        rng = np.random.default_rng(seed)
        self.images = rng.random((classes, per_class) + self.input_shape, dtype=np.float32)

    def sample(self, split, meta_batch_size, shots, queries, rng) -> Task:
        del split  # one pool for every split
        n_cls, n_img = self.images.shape[:2]
        ways, per = self.output_dim, shots + queries
        cls = rng.random((meta_batch_size, n_cls)).argsort(1)[:, :ways]  # [mb, ways]
        img = rng.random((meta_batch_size, ways, n_img)).argsort(2)[:, :, :per]  # [mb, ways, per]
        x = self.images[cls[:, :, None], img]  # [mb, ways, per, *shape]
        y = np.broadcast_to(np.arange(ways, dtype=np.int32)[None, :, None], img.shape)

        def part(a, lo, hi):  # examples lo..hi-1 of every class, flattened class-major
            return a[:, :, lo:hi].reshape((meta_batch_size, ways * (hi - lo)) + a.shape[3:])

        return Task(part(x, 0, shots), part(y, 0, shots), part(x, shots, per), part(y, shots, per))


def make_config(name: str, overrides: Dict):
    from maml_tf.experiment.config import Config

    return Config(**BENCHES[name].config).replace(**overrides)


def make_sampler(name: str, config):
    bench = BENCHES[name]
    if bench.image_shape is None:
        from maml_tf.datasets import sinusoid

        return sinusoid.make_sampler(config)
    return SyntheticImages(config.ways, bench.image_shape)


def analytic_flops(model, config, support: int, query: int) -> Optional[float]:
    """FLOPs of one meta-iteration: 2·MACs of every Conv2D/Dense, times the peers' pass factors;
    None for ANIL and the multi-step loss, whose passes this count does not model.

    Per example, F = forward FLOPs and f1 = the first layer's (its input gradient is never
    needed). Per inner step on the support set: 9F − 4f1 (second order) or 3F − f1 (first
    order); query forward and backward: 3F − f1. Reptile: 3F − f1 per inner-batch example and
    inner step. Elementwise work (norm, ReLU, Adam) is left out,
    as in peers/flops.py, whose numbers this reproduces for the Omniglot networks.
    """
    import keras

    if config.anil or config.multi_step_loss:
        return None
    per_layer = []
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Conv2D):
            out = layer.output.shape  # (None, h, w, filters)
            kh, kw, cin, cout = layer.kernel.shape
            per_layer.append(2 * out[1] * out[2] * cout * kh * kw * cin)
        elif isinstance(layer, keras.layers.Dense):
            per_layer.append(2 * int(np.prod(layer.kernel.shape)))
    big_f, f1 = float(sum(per_layer)), float(per_layer[0])
    if config.algorithm == "reptile":  # first-order steps on inner batches; the query is not trained on
        batch = config.inner_batch_size or support
        return config.meta_batch_size * config.inner_steps * (3 * big_f - f1) * batch
    step = (3 * big_f - f1) if config.first_order else (9 * big_f - 4 * f1)
    return config.meta_batch_size * (config.inner_steps * step * support + (3 * big_f - f1) * query)


def cpu_model() -> str:
    """The CPU's model name as lscpu shows it (every timing names its CPU)."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return f"{len(names)} x {names[0]}" if names else "unknown"


def _busy_jiffies():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v) - v[3] - v[4]


def _summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


# Code paths that are not Config settings, for A-B runs (`benchmark --compare switch=NAME`):
# each restores a reference implementation that a speed change replaced, as (layer class of
# maml_tf.layers, class attribute, value).
SWITCHES = {
    # autodiff through the batch moments, as before batch_norm_train's closed-form derivatives
    "bn_autodiff": ("BatchNorm", "closed_form_gradients", False),
    # Keras' convolution on every input, as before layers.Conv2D's patches @ kernel
    "conv_direct": ("Conv2D", "patch_matmul", False),
    # patches @ kernel on one-channel inputs only (Omniglot), as before RGB inputs took it too
    "patches_1ch": ("Conv2D", "max_patch_channels", 1),
    # the patch convolution and its batch norm apart, as before the fold
    "bn_unfolded": ("BatchNorm", "fold_patch_conv", False),
}


def apply_switch(name: str):
    """Sets the reference path `name` of SWITCHES (imports TensorFlow: after runtime.configure)."""
    from maml_tf import layers

    layer, attribute, value = SWITCHES[name]
    setattr(getattr(layers, layer), attribute, value)


def measure(name: str, overrides: Dict, warmup: int, iters: int, max_seconds: float,
            switches=()) -> Dict:
    """Times `name` in this process (with the reference paths `switches` of SWITCHES); returns
    one JSON-able row."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    config = make_config(name, overrides)
    from maml_tf.experiment import runtime

    runtime.configure(config)  # as main does, before TensorFlow loads
    for switch in switches:
        apply_switch(switch)
    from maml_tf.experiment import experiment

    sampler = make_sampler(name, config)
    exp = experiment.Experiment(config, sampler=sampler)
    step = exp.make_train_step(config.inner_steps)
    batches = experiment.task_batches(exp.sampler, "train", config.meta_batch_size, config.shots,
                                 config.queries, config.seed, 0)

    def run():  # one iteration of train_and_evaluate's loop; float() waits for the result
        a = time.perf_counter()
        tasks = next(batches)
        b = time.perf_counter()
        {k: float(v) for k, v in step(tasks).items()}
        return b - a, time.perf_counter() - b

    t0 = time.perf_counter()
    step.get_concrete_function()
    trace_s = time.perf_counter() - t0
    first_call_s = sum(run())
    for _ in range(warmup):
        run()
    raw_sample = [0.0] * 5
    for i in range(5):  # the sampler alone, off the loop (what prefetching has to hide)
        a = time.perf_counter()
        sampler.sample("train", config.meta_batch_size, config.shots, config.queries,
                       np.random.default_rng([config.seed, 10 ** 6 + i]))
        raw_sample[i] = time.perf_counter() - a
    busy0, cpu0, wall0, load0 = _busy_jiffies(), sum(os.times()[:2]), time.perf_counter(), os.getloadavg()
    samples, steps = [], []
    while len(steps) < iters and (len(steps) < 5 or time.perf_counter() - wall0 < max_seconds):
        s, t = run()
        samples.append(s)
        steps.append(t)
    wall = time.perf_counter() - wall0
    self_cpu = sum(os.times()[:2]) - cpu0
    other = max(0.0, (_busy_jiffies() - busy0) / os.sysconf("SC_CLK_TCK") - self_cpu)
    task = sampler.sample("train", 1, config.shots, config.queries, np.random.default_rng(0))
    flops = analytic_flops(exp.model, config, task.support_x.shape[1], task.query_x.shape[1])
    totals = [s + t for s, t in zip(samples, steps)]
    return {
        "bench": name, "peer_config": BENCHES[name].peer_config, "overrides": overrides,
        "switches": list(switches),
        "iters": len(steps), "warmup": warmup,
        "step_s": _summary(steps), "sample_s": _summary(samples), "total_s": _summary(totals),
        "sampler_alone_s": statistics.median(raw_sample),
        "trace_s": trace_s, "first_call_s": first_call_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "analytic_gflop": flops and flops / 1e9,
        "gflops_per_s": flops and flops / 1e9 / statistics.median(steps), "cpu_model": cpu_model(),
        "self_cores_used": self_cpu / wall, "other_procs_cores_used": other / wall,
        "loadavg_start": load0[0], "loadavg_end": os.getloadavg()[0],
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "cpu_s_per_iter": self_cpu / len(steps),
    }
