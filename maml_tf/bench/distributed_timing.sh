#!/bin/bash
# Seconds per meta-iteration with 1 vs 2 replicas on this machine (results/distributed.md).
# Usage: bash maml_tf/bench/distributed_timing.sh [OUT_DIR]; needs MAML_TF_DATA_DIR for the Omniglot runs.
set -u
cd "$(dirname "$0")/../.." || exit 1
OUT=${1:-/tmp/maml_tf_distributed_timing}
mkdir -p "$OUT"
export PYTHONPATH=$PWD TF_CPP_MIN_LOG_LEVEL=3
PY=${PYTHON:-python}

# 1. The real train step (maml_tf.bench.benchmark: synthetic images), default vs mirrored over 2
#    logical CPU devices, interleaved A-B-A-B.
$PY -m maml_tf.bench.benchmark --benches omniglot_5w1s_q1_o2,omniglot_20w1s_q1_o1 \
  --compare strategy=mirrored --repeats 2 --iters 15 --warmup 2 --max_seconds 15 --out "$OUT/bench.jsonl"
$PY -m maml_tf.bench.benchmark --benches sinusoid_o2 --set meta_batch_size=24 \
  --compare strategy=mirrored --repeats 2 --iters 30 --warmup 3 --max_seconds 10 --out "$OUT/bench.jsonl"

# 2. train_and_evaluate's own progress lines: one process vs two multi_worker processes on loopback.
free_port() { $PY -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
compare() {  # name, flags...
  local name=$1; shift
  local flags="$* --val_interval=0 --checkpoint_interval=100000 --log=False --run_name=run"
  rm -rf "$OUT/$name"
  $PY -m maml_tf.main $flags --logdir="$OUT/$name/single" > "$OUT/$name.single.log" 2>&1
  local p1 p2 i
  p1=$(free_port); p2=$(free_port)
  for i in 0 1; do
    TF_CONFIG="{\"cluster\": {\"worker\": [\"127.0.0.1:$p1\", \"127.0.0.1:$p2\"]}, \"task\": {\"type\": \"worker\", \"index\": $i}}" \
      timeout 600 $PY -m maml_tf.main $flags --strategy=multi_worker --logdir="$OUT/$name/multi" \
      > "$OUT/$name.worker$i.log" 2>&1 &
  done
  wait
  grep -H "iter \|replicas" "$OUT/$name.single.log" "$OUT/$name.worker0.log"
}
compare sinusoid --datasource=sinusoid --norm=None --update_batch_size=10 --meta_batch_size=24 \
  --update_lr=0.01 --metatrain_iterations=400 --print_interval=100
compare omniglot --datasource=omniglot --update_batch_size=1 --num_query=1 --meta_batch_size=32 \
  --update_lr=0.4 --metatrain_iterations=80 --print_interval=20
