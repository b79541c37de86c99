"""Exploratory op-type profile of the train step (results/performance.md): python -m maml_tf.bench.prof BENCH [SWITCH...]."""
import os, sys, glob, collections
from maml_tf.bench import step as benchmark
from maml_tf.experiment import runtime
runtime.configure(benchmark.make_config(sys.argv[1], {}))  # the kernels and threads main would use
import numpy as np, tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2
from maml_tf.experiment.experiment import Experiment
bench = sys.argv[1]
for switch in sys.argv[2:]:  # reference code paths (bench.step.SWITCHES), for A-B profiles
    benchmark.apply_switch(switch)
config = benchmark.make_config(bench, {})
sampler = benchmark.make_sampler(bench, config)
exp = Experiment(config, sampler=sampler)
st = exp.make_train_step(config.inner_steps)
tasks = sampler.sample("train", config.meta_batch_size, config.shots, config.queries, np.random.default_rng(0))
for _ in range(3): [float(x) for x in st(tasks).values()]
d = os.path.join(os.environ.get("PROF_DIR", "/tmp"), "maml_tf_prof_" + bench)
tf.profiler.experimental.start(d)
for _ in range(3): [float(x) for x in st(tasks).values()]
tf.profiler.experimental.stop()
f = sorted(glob.glob(d + "/**/*.xplane.pb", recursive=True))[-1]
xs = xplane_pb2.XSpace(); xs.ParseFromString(open(f, "rb").read())
agg = collections.Counter(); cnt = collections.Counter()
for plane in xs.planes:
    md = {k: v.name for k, v in plane.event_metadata.items()}
    for line in plane.lines:
        for ev in line.events:
            name = md.get(ev.metadata_id, "?")
            if ":" in name: typ = name.split(":")[-1]
            else: typ = name
            agg[(plane.name, line.name, typ)] += ev.duration_ps / 1e12 / 3
            cnt[(plane.name, line.name, typ)] += 1 / 3
for k, v in agg.most_common(45):
    print("%.4f s  n=%6d  %s" % (v, cnt[k], k))
