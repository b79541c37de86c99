"""Exploratory A-B probe (results/performance.md): variants of algorithms.map_tasks / XLA / threads on one bench, alternated in one process.

Usage: [THREADS=inter,intra] [TF_ENABLE_ONEDNN_OPTS=0|1] python -m maml_tf.bench.probe BENCH base,vm,pi1,pi32,unroll,xla ITERS
"""
import os, sys, time, statistics
import numpy as np, tensorflow as tf
from maml_tf import algorithms
from maml_tf.bench import step as benchmark
from maml_tf.experiment.experiment import Experiment

if os.environ.get("THREADS"):
    a, b = map(int, os.environ["THREADS"].split(","))
    tf.config.threading.set_inter_op_parallelism_threads(a); tf.config.threading.set_intra_op_parallelism_threads(b)
bench = sys.argv[1]; variants = sys.argv[2].split(","); iters = int(sys.argv[3]) if len(sys.argv) > 3 else 10
config = benchmark.make_config(bench, {})
sampler = benchmark.make_sampler(bench, config)
orig_map = algorithms.map_tasks

def map_pi(pi):
    def m(fn, tasks, weights, names):
        sig = ([tf.TensorSpec(w.shape, w.dtype) for w in weights], {n: tf.TensorSpec((), weights[0].dtype) for n in names})
        return tf.map_fn(fn, tasks, fn_output_signature=sig, parallel_iterations=pi)
    return m

def map_unroll(fn, tasks, weights, names):
    n = config.meta_batch_size
    outs = [fn(tf.nest.map_structure(lambda t: t[i], tasks)) for i in range(n)]
    return tf.nest.map_structure(lambda *xs: tf.stack(xs), *outs)

def map_vm(fn, tasks, weights, names):
    return tf.vectorized_map(fn, tasks, fallback_to_while_loop=True, warn=False)
tf.get_logger().setLevel("ERROR")
steps = {}
for v in variants:
    algorithms.map_tasks = map_unroll if v == "unroll" else map_vm if v == "vm" else map_pi(int(v[2:])) if v.startswith("pi") else orig_map
    exp = Experiment(config, sampler=sampler)
    orig_tf_function = tf.function
    if v.endswith("xla"):
        tf.function = lambda *a, **k: orig_tf_function(*a, jit_compile=True, **k)
        algorithms.map_tasks = map_vm if v.startswith("vm") else orig_map
    st = exp.make_train_step(config.inner_steps)
    tf.function = orig_tf_function
    t0 = time.time(); st.get_concrete_function(); tr = time.time() - t0
    tasks = sampler.sample("train", config.meta_batch_size, config.shots, config.queries, np.random.default_rng(0))
    t0 = time.time(); [float(x) for x in st(tasks).values()]; fc = time.time() - t0
    steps[v] = (st, tasks); print(v, "trace", round(tr, 2), "first", round(fc, 2), flush=True)
times = {v: [] for v in variants}; cpu = {v: [] for v in variants}
for r in range(iters):
    for v in variants:
        st, tasks = steps[v]
        c = sum(os.times()[:2]); a = time.perf_counter(); [float(x) for x in st(tasks).values()]; times[v].append(time.perf_counter() - a); cpu[v].append(sum(os.times()[:2]) - c)
for v in variants:
    t = times[v][2:]
    print(v, "median %.4f min %.4f cpu %.4f" % (statistics.median(t), min(t), statistics.median(cpu[v][2:])), "rss", open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
print("load", open("/proc/loadavg").read().strip())
