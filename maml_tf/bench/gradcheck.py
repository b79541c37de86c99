"""A trained Omniglot model's exact second-order meta-gradient at full size, checked in float64.

The tests check the meta-gradient on toy networks with two inner steps; 20-way Omniglot trains
the full network with five, a path only the paper runs exercise. At a run's newest checkpoint
(or a model.keras), on two real meta-training tasks of the run's shape (ways, shots, one query
per class, its inner lr and steps), this prints (1) the product's fast paths (patch-MatMul convolution, batch norm folded into it and
its closed-form derivatives) against the reference paths (Keras' convolution, autodiff of the
batch-norm moments), and (2) the meta-gradient's directional derivative along random
directions against a central finite difference of the post-adaptation query loss.
Usage: python -m maml_tf.bench.gradcheck RUN_DIR_OR_MODEL_KERAS DATA_DIR CACHE_DIR
"""

import sys

import keras
import numpy as np

from maml_tf import algorithms, layers, metrics, models
from maml_tf.datasets import omniglot
from maml_tf.deploy import loading
from maml_tf.errors import UserError

EPSILON = 1e-5  # float64 central differences: truncation ~eps², rounding ~1e-16/eps
DIRECTIONS = 3
REFERENCE_SWITCHES = ((layers.Conv2D, "patch_matmul"), (layers.BatchNorm, "fold_patch_conv"),
                      (layers.BatchNorm, "closed_form_gradients"))


def float64_learner(trained: keras.Model, config) -> models.Learner:
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    model = models.conv_net(trained.input_shape[1:], config.ways, filters=config.num_filters,
                            max_pool=config.max_pool, norm=config.norm)
    for mine, theirs in zip(model.weights, trained.weights):
        mine.assign(np.asarray(theirs.numpy(), np.float64))
    return models.Learner(model)


def set_reference_paths(reference: bool):
    for cls, name in REFERENCE_SWITCHES:
        setattr(cls, name, not reference)


def main(argv):
    path, data_dir, cache_dir = argv[1:4]
    trained = loading.load(path)
    config = trained.config.replace(data_dir=data_dir, cache_dir=cache_dir)
    ways, shots, steps, inner_lr = config.ways, config.shots, config.inner_steps, config.inner_lr
    learner = float64_learner(trained.model, config)
    tasks = omniglot.make_sampler(config).sample("train", 2, shots, 1, np.random.default_rng(0))
    tasks = tasks._replace(support_x=tasks.support_x.astype(np.float64),
                           query_x=tasks.query_x.astype(np.float64))
    loss_fn, theta = metrics.make_xent_over_k(shots), learner.weights()

    def meta(weights):
        result = algorithms.maml_meta_grads(learner, loss_fn, weights, tasks, inner_lr, steps)
        return [g.numpy() for g in result.grads], float(result.metrics["post_loss"])

    fast, loss = meta(theta)
    set_reference_paths(True)
    reference, _ = meta(theta)
    set_reference_paths(False)
    scale = max(np.abs(g).max() for g in reference)
    print(f"{path} (iteration {trained.iteration}): {ways}-way {shots}-shot, {steps} inner steps, "
          f"lr {inner_lr}, 2 tasks; query loss {loss:.4f}")
    print(f"1. max |fast - reference| / max |reference| = "
          f"{max(np.abs(a - b).max() for a, b in zip(fast, reference)) / scale:.2e}")
    rng = np.random.default_rng(1)
    for i in range(DIRECTIONS):
        direction = [rng.standard_normal(w.shape) for w in theta]
        norm = np.sqrt(sum((d ** 2).sum() for d in direction))
        direction = [d / norm for d in direction]
        shifted = [meta([w + s * EPSILON * d for w, d in zip(theta, direction)])[1]
                   for s in (1, -1)]
        fd = (shifted[0] - shifted[1]) / (2 * EPSILON)
        exact = sum((g * d).sum() for g, d in zip(fast, direction))
        print(f"2. direction {i}: <meta-gradient, d> {exact:+.8e}  finite difference {fd:+.8e}  "
              f"relative error {abs(exact - fd) / abs(fd):.2e}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[-1])
    try:
        main(sys.argv)
    except UserError as err:
        sys.exit(f"error: {err}")
