"""Process-wide TensorFlow settings taken from the Config; they must be set before TensorFlow loads."""

import os
import sys
from typing import Dict

SMALL_BATCH = 10  # images per convolution call up to which Eigen beats oneDNN (measured)


def use_onednn(config) -> bool:
    """oneDNN or Eigen CPU kernels (`config.onednn`: "on", "off" or "auto").

    Measured on a 2-core AVX-512 CPU (results/performance.md): Eigen runs the strided conv
    net's convolutions 35-40% cheaper when each call sees at most ~10 images (Omniglot 5-way
    1-shot, 1 query); from 20 images on (20-way, 15 queries) oneDNN is as fast or ~10% faster,
    and on the max-pool net's 84x84 stride-1 convolutions it is 2x faster. "auto" follows that.
    """
    if config.onednn != "auto":
        return config.onednn == "on"
    images_per_call = config.ways * max(config.shots, config.queries)
    return config.max_pool or images_per_call > SMALL_BATCH


def environment(config) -> Dict[str, str]:
    """The environment variables TensorFlow must see for `config`'s CPU kernels and threads.

    Threads: the meta-batch's tasks already run concurrently on TensorFlow's inter-op threads
    (one per core; `meta_batch.map_tasks` keeps that many in flight), so splitting each op over the
    cores as well mostly adds synchronisation. Measured on 2 cores (results/performance.md),
    one thread per op made the meta-step 15-35% faster on every Omniglot and MiniImageNet setting.
    `intra_op_threads=0` leaves TensorFlow's default (all cores, or TF_NUM_INTRAOP_THREADS).
    """
    env = {"TF_ENABLE_ONEDNN_OPTS": "1" if use_onednn(config) else "0"}
    if config.intra_op_threads > 0:
        env["TF_NUM_INTRAOP_THREADS"] = str(config.intra_op_threads)
    return env


def configure(config) -> bool:
    """Applies `environment(config)`; returns False (and changes nothing) if TensorFlow is loaded.

    TensorFlow reads these variables once, when it is imported or starts its thread pools, so
    `main` calls this before its first TensorFlow import. GPUs are unaffected.
    """
    if "tensorflow" in sys.modules:
        return False
    os.environ.update(environment(config))
    return True

