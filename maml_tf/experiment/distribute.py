"""tf.distribute strategies from the config: one device, local GPUs (or logical CPUs), several machines, TPU."""

import contextlib
import json
import os
import shutil
import tempfile
from typing import Dict, Iterator, Tuple

import tensorflow as tf

from maml_tf.errors import UserError
from maml_tf.types import Task

# Created once per process: logical CPU devices and the collective runtime of multi_worker can
# only be configured before TensorFlow initialises its devices.
_STRATEGIES: Dict[Tuple, tf.distribute.Strategy] = {}


def strategy_for(config) -> tf.distribute.Strategy:
    """The strategy of `config.strategy`; "default" is TensorFlow's own single-device strategy."""
    if config.strategy == "default":
        return tf.distribute.get_strategy()
    key = (config.strategy, config.num_cpu_devices)
    if key not in _STRATEGIES:
        _STRATEGIES[key] = _create(config.strategy, config.num_cpu_devices)
    return _STRATEGIES[key]


def _create(name: str, num_cpu_devices: int) -> tf.distribute.Strategy:
    if name == "mirrored":
        if tf.config.list_physical_devices("GPU"):
            return tf.distribute.MirroredStrategy()  # every local GPU
        return tf.distribute.MirroredStrategy(logical_cpus(num_cpu_devices))
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise UserError("--strategy=multi_worker needs the TF_CONFIG environment variable "
                            "(the cluster's workers and this one's index; see the README)")
        check_tf_config(os.environ["TF_CONFIG"])
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        # TPU_NAME: a TPU's name or grpc:// address, "local" on a TPU VM; unset: TF's discovery.
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME"))
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as err:  # none here, or unreachable
            raise UserError(f"--strategy=tpu: no TPU found ({' '.join(str(err).split())[:200]}); "
                            "set TPU_NAME to its name or grpc:// address, 'local' on a TPU VM") from None
        return tf.distribute.TPUStrategy(resolver)
    raise UserError(f"unknown strategy {name!r}")


def check_tf_config(text: str):
    """UserError unless `text` (TF_CONFIG) names the cluster and this worker's place in it:
    TensorFlow would raise a traceback, or (no "cluster") train alone as if there were one."""
    form = ('TF_CONFIG must be like {"cluster": {"worker": ["host1:port", "host2:port"]}, '
            '"task": {"type": "worker", "index": 0}}; see the README')
    try:
        tf_config = json.loads(text)
    except ValueError as err:
        raise UserError(f"TF_CONFIG is not JSON ({err}); {form}") from None
    if not isinstance(tf_config, dict):
        raise UserError(f"TF_CONFIG is a JSON {type(tf_config).__name__}, not an object; {form}")
    cluster, task = tf_config.get("cluster"), tf_config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise UserError(f'TF_CONFIG has no "cluster" listing the workers; {form}')
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise UserError(f'TF_CONFIG has no "task" with this worker\'s "type" and "index"; {form}')
    _check_task(cluster, str(task["type"]), task["index"])  # str: as TensorFlow reads it


def _check_task(cluster: dict, job: str, index):
    """UserError unless the cluster has an address for task `index` of `job`."""
    addresses = cluster.get(job)
    if not isinstance(addresses, (list, dict)):  # a dict: a sparse job, {index: address}
        raise UserError(f"TF_CONFIG's task type {job!r} is not a job of its cluster "
                        f"({', '.join(map(repr, cluster))})")
    indices = list(addresses) if isinstance(addresses, dict) else range(len(addresses))
    try:
        known = str(int(index)) in map(str, indices)  # int: as TensorFlow reads it
    except (TypeError, ValueError):
        known = False
    if not known:
        raise UserError(f"TF_CONFIG's task index {index!r} does not name one of its cluster's "
                        f"{len(addresses)} {job!r} addresses (numbered from 0)")


def logical_cpus(n: int) -> list:
    """Names of `n` logical CPU devices, splitting the one physical CPU device if need be."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError as err:  # devices already initialised: usable if they are already split
        if len(tf.config.list_logical_devices("CPU")) < n:
            raise UserError(f"cannot split the CPU into {n} devices after TensorFlow has started; "
                            "create the strategy first") from err
    return [d.name for d in tf.config.list_logical_devices("CPU")[:n]]


def check(config, strategy: tf.distribute.Strategy):
    """UserError for a run these replicas cannot do as one device would."""
    n = strategy.num_replicas_in_sync
    if config.meta_batch_size % n:  # equal shares, so that the mean of their means is the batch's
        raise UserError(f"meta_batch_size={config.meta_batch_size} does not split evenly over {n} "
                        f"replicas; use a multiple of {n}")
    if (config.jit_compile and n > 1 and not isinstance(strategy, tf.distribute.TPUStrategy)
            and not all("GPU" in d.upper() for d in strategy.extended.worker_devices)):
        raise UserError("jit_compile with several replicas needs GPUs (XLA on a CPU replica cannot "
                        "read the variables of the others); drop --jit_compile")


def replica_tasks(tasks: Task) -> Task:
    """This replica's contiguous share of the meta-batch (called inside `strategy.run`).

    Every replica receives the whole batch and slices it, so the compiled step keeps one input
    signature for every strategy, and the same seed gives the same tasks as on one device.
    """
    ctx = tf.distribute.get_replica_context()
    n = ctx.num_replicas_in_sync
    if n == 1:
        return tasks
    size = tf.shape(tasks.support_x)[0] // n
    start = tf.cast(ctx.replica_id_in_sync_group, tf.int32) * size
    return Task(*[t[start:start + size] for t in tasks])


def apply_mean(optimizer, grads, variables, grad_clip: float = 0.0, clipped=None):
    """Applies the mean over replicas of `grads` (each replica's mean over its tasks), clipped
    to ±grad_clip after the mean when grad_clip > 0, exactly as on one device (replica context).
    `clipped`: one bool per entry, whether it is clipped (None: all)."""
    ctx = tf.distribute.get_replica_context()
    if grad_clip > 0:
        mask = [True] * len(grads) if clipped is None else clipped
        grads = [tf.clip_by_value(g, -grad_clip, grad_clip) if clip else g
                 for clip, g in zip(mask, ctx.all_reduce(tf.distribute.ReduceOp.MEAN, grads))]
    if ctx.num_replicas_in_sync > 1:  # Keras' TF optimizer sums the replicas' gradients itself
        grads = [g / ctx.num_replicas_in_sync for g in grads]
    optimizer.apply_gradients(zip(grads, variables))


def agreed(strategy: tf.distribute.Strategy, values):
    """One value per entry of per-replica `values`: the mean of floats (moving statistics,
    moments), the first replica's integers (seed states, which every replica computes alike)."""
    def one(v):
        first = strategy.experimental_local_results(v)[0]
        if first.dtype.is_floating:
            return strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
        return first
    return [one(v) for v in values]


def mean_over_replicas(strategy: tf.distribute.Strategy, values):
    """Per-replica means (equal task counts) averaged: the mean over the whole meta-batch."""
    return tf.nest.map_structure(
        lambda v: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None), values)


def workers(strategy: tf.distribute.Strategy) -> int:
    """How many processes (machines) take part: more than 1 only under multi_worker."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    return max(1, len(strategy.cluster_resolver.cluster_spec().as_dict().get("worker", [])))


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True where checkpoints, TensorBoard and results are written (every strategy but the
    non-chief workers of multi_worker)."""
    return strategy.extended.should_checkpoint


@contextlib.contextmanager
def write_dir(strategy: tf.distribute.Strategy, workdir: str) -> Iterator[str]:
    """The directory this process writes into: `workdir` on the chief; on any other worker a
    scratch directory deleted at the end. TF's rule: every worker takes part in saving (the
    variables may be read collectively), only the chief's files are kept."""
    if is_chief(strategy):
        yield workdir
        return
    scratch = tempfile.mkdtemp(prefix="maml_tf_worker_")
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
