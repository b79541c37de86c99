#!/usr/bin/env bash
# The paper's experiments, one `run` line per result; each run resumes from its checkpoint.
# Usage: ./run_experiments.sh [--quick] [--save | --autosave=SECONDS] [PATTERN]
#   --quick   every run and report line at toy size (20 iterations, 20 test tasks) into $LOGDIR/quick:
#             a smoke test (the timing lines, which have no toy size, are left out)
#   --save    keep every run's newest checkpoint and small files in results/runs (then commit them);
#             a run training meanwhile is held for the moment of the copy
#   --autosave=SECONDS  --save, and commit results/runs, every SECONDS until stopped (beside the queue)
#   PATTERN   only the lines whose name contains PATTERN (e.g. sinusoid, omniglot)
# Env: LOGDIR (default ~/maml_tf_runs), PYTHON (default python), MAML_TF_DATA_DIR for the images.
# A run whose directory has no checkpoint continues from its copy in results/runs, if there is one
# (MAML_TF_RUN_STORE overrides the folder): runs outlive the machine they trained on.
# A report quotes $LOGDIR/<name>_notes.md, if present, and the paper runs' notes kept with their
# state in results/runs/<name>_notes.md: how the runs were made (machines, load, cuts, sessions).
set -euo pipefail
QUICK=0
SAVE=0
AUTOSAVE=""
ONLY=""
for arg in "$@"; do
  case $arg in
    --quick) QUICK=1 ;;
    --save) SAVE=1 ;;
    --autosave=*) SAVE=1 AUTOSAVE=${arg#*=}
       [[ $AUTOSAVE =~ ^[1-9][0-9]*$ ]] || { echo "error: --autosave takes a number of seconds, got '$AUTOSAVE'"; exit 1; } ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    -*) echo "error: unknown option $arg (./run_experiments.sh --help lists them)"; exit 1 ;;
    *) [ -z "$ONLY" ] || { echo "error: one PATTERN at most, got '$ONLY' and '$arg'"; exit 1; }
       ONLY=$arg ;;
  esac
done
MATCHED=0  # whether PATTERN selected a line (checked at the end)
export LOGDIR=${LOGDIR:-$HOME/maml_tf_runs}  # exported: reports write run paths as $LOGDIR/...
RESULTS=results
if [ "$QUICK" = 1 ]; then LOGDIR=$LOGDIR/quick; RESULTS=$LOGDIR/results; fi
PY=${PYTHON:-python}
STORE=$(cd "$(dirname "$0")" && pwd)/results/runs
if [ "$QUICK" = 1 ]; then STORE=$LOGDIR/store; fi  # toy runs never start from the paper runs' state
export MAML_TF_RUN_STORE=${MAML_TF_RUN_STORE:-$STORE}
# --quick's toy runs never go into (or start from) a store of real runs, even one exported.
if [ "$QUICK" = 1 ]; then MAML_TF_RUN_STORE=$STORE; fi
# The runs refuse a store that is no folder (a mistyped path); --quick's own is made at its first run.
make_store() { if [ "$MAML_TF_RUN_STORE" = "$STORE" ]; then mkdir -p "$STORE"; fi; }

save_runs() {  # every run under $LOGDIR (not the toy ones), and the
  local runs   # evaluations of a directory with no checkpoints (a from-scratch baseline's)
  [ -d "$LOGDIR" ] || { echo "error: LOGDIR=$LOGDIR is no folder: no runs to keep"; return 1; }
  mapfile -t runs < <(find "$LOGDIR" -mindepth 3 -maxdepth 3 \( -name checkpoints -type d -o \
    -name 'eval_*.json' -type f \) -not -path "$LOGDIR/quick/*" \
    -printf '%h\n' | sort -u)
  [ "${#runs[@]}" -gt 0 ] || { echo "no runs with checkpoints under $LOGDIR"; return 1; }
  "$PY" -m maml_tf.workdir.snapshot save --store "$MAML_TF_RUN_STORE" "${runs[@]}"
}
if [ -n "$AUTOSAVE" ]; then
  # A machine that ends mid-session loses at most SECONDS of training beyond the newest checkpoint.
  # What was kept is committed even when one run could not be (its error is printed).
  while sleep "$AUTOSAVE"; do
    save_runs || echo "autosave: not every run was kept (see above); committing what was"
    { git -C "$MAML_TF_RUN_STORE" add -A . && git -C "$MAML_TF_RUN_STORE" commit -q \
      -m "Periodic save of the training runs' state ($(date -u '+%Y-%m-%d %H:%M') UTC)" -- . ; } || true
  done
fi
if [ "$SAVE" = 1 ]; then save_runs; exit; fi

# run NAME FLAGS...: python -m maml_tf.main FLAGS (shrunk to toy size with --quick).
run() {
  local name=$1 a
  shift
  wanted "$name" || return 0
  local args=()
  for a in "$@"; do
    if [ "$QUICK" = 1 ]; then
      case $a in --*_iterations=0) ;; --*_iterations=*) a=${a%%=*}=20 ;; esac
    fi
    args+=("$a")
  done
  if [ "$QUICK" = 1 ]; then
    args+=(--num_test_tasks=20 --num_val_tasks=5 --val_interval=10 --checkpoint_interval=10 --print_interval=10)
  fi
  echo "== $name: python -m maml_tf.main ${args[*]}"
  make_store && "$PY" -m maml_tf.main "${args[@]}"
}

# wanted NAME: whether PATTERN selects the line NAME.
wanted() { [[ -z $ONLY || $1 == *"$ONLY"* ]] && MATCHED=1; }
# dir_of FLAGS...: the run directory those flags name, asked of the package (never spelled here).
dir_of() { make_store && "$PY" -m maml_tf.main "$@" --print_run_dir; }
# stored_or DIR: DIR (under $LOGDIR), else its committed copy in the run store (a fresh machine).
stored_or() { if [ -d "$1" ]; then echo "$1"; else echo "$MAML_TF_RUN_STORE/${1#"$LOGDIR"/}"; fi; }

# report NAME COMMAND...: a results/ report built from the runs above it (`if wanted NAME` around
# a report whose arguments ask for run directories, so they are asked for only when it runs).
report() {
  local name=$1
  shift
  wanted "$name" || return 0
  echo "== $name: $*"
  "$@"
}

# BEGIN sinusoid (Section 5.1; K=10, alpha=0.01 as the paper's appendix; 70k iterations)
SINE="--datasource=sinusoid --norm=None --logdir=$LOGDIR/sine"
run sinusoid-maml        $SINE --metatrain_iterations=70000 --update_batch_size=10 --update_lr=0.01
run sinusoid-pretrained  $SINE --pretrain_iterations=70000 --metatrain_iterations=0 --update_batch_size=10 --update_lr=0.01
for K in 5 10; do
  run sinusoid-maml-test       $SINE --metatrain_iterations=70000 --train=False --test_set=True --train_update_batch_size=10 --update_batch_size=$K --update_lr=0.01
  run sinusoid-pretrained-test $SINE --pretrain_iterations=70000 --metatrain_iterations=0 --train=False --test_set=True --train_update_batch_size=10 --update_batch_size=$K --update_lr=0.01
  run sinusoid-pretrained-test $SINE --pretrain_iterations=70000 --metatrain_iterations=0 --train=False --test_set=True --train_update_batch_size=10 --update_batch_size=$K --train_update_lr=0.01 --update_lr=0.02
done
# END sinusoid
if wanted sinusoid-report; then report sinusoid-report "$PY" -m maml_tf.reports.sinusoid --out "$RESULTS" \
  --maml "$(dir_of $SINE --metatrain_iterations=70000 --update_batch_size=10 --update_lr=0.01)" \
  --pretrained "$(dir_of $SINE --pretrain_iterations=70000 --metatrain_iterations=0 --update_batch_size=10 --update_lr=0.01)" \
  --recorded "$RESULTS/sinusoid.json" --commands "$(sed -n '/^# BEGIN sinusoid/,/^# END sinusoid/p' "$0")"; fi

# BEGIN omniglot (Table 1; the original README's commands; 60k iterations; test: 600 tasks of the 423 meta-test characters)
for K in 1 5; do
  O5="--datasource=omniglot --metatrain_iterations=60000 --meta_batch_size=32 --update_batch_size=$K --update_lr=0.4 --num_updates=1 --patience=20000 --logdir=$LOGDIR/omniglot5way/"
  O20="--datasource=omniglot --metatrain_iterations=60000 --meta_batch_size=16 --update_batch_size=$K --num_classes=20 --update_lr=0.1 --num_updates=5 --patience=20000 --logdir=$LOGDIR/omniglot20way/"
  run omniglot-5way-${K}shot       $O5
  run omniglot-5way-${K}shot-test  $O5 --train=False --test_set=True
  run omniglot-5way-${K}shot-test  $O5 --train=False --test_set=True --test_best=True
  run omniglot-20way-${K}shot      $O20
  run omniglot-20way-${K}shot-test $O20 --train=False --test_set=True
  run omniglot-20way-${K}shot-test $O20 --train=False --test_set=True --test_best=True
done
# END omniglot
# The trained 20-way model's second-order meta-gradient at full size (5 inner steps) in float64:
# fast paths against the reference ones and against finite differences (results/runs/omniglot_notes.md)
if [ "$QUICK" = 0 ] && wanted omniglot-gradcheck; then report omniglot-gradcheck "$PY" -m maml_tf.bench.gradcheck \
  "$(dir_of ${O20/update_batch_size=5/update_batch_size=1} --logdir="$STORE/omniglot20way")" \
  "${MAML_TF_DATA_DIR:-data}" "${MAML_TF_CACHE_DIR:-$HOME/.cache/maml_tf}"; fi
report omniglot-report "$PY" -m maml_tf.reports.omniglot --out "$RESULTS" \
  --logdir "$LOGDIR/omniglot5way" --logdir "$LOGDIR/omniglot20way" \
  --logdir "$MAML_TF_RUN_STORE/omniglot5way" --logdir "$MAML_TF_RUN_STORE/omniglot20way" \
  --commands "$(sed -n '/^# BEGIN omniglot/,/^# END omniglot/p' "$0")" \
  --notes "$(cat "$LOGDIR/omniglot_notes.md" "$MAML_TF_RUN_STORE/omniglot_notes.md" 2>/dev/null || true)"

# BEGIN reptile (the Reptile paper's Omniglot settings; one trained model serves 1- and 5-shot)
R5="--datasource=omniglot --num_classes=5 --algorithm=reptile --train_update_batch_size=10 --num_query=1 --inner_optimizer=adam --update_lr=0.001 --num_updates=5 --inner_batch_size=10 --meta_batch_size=5 --meta_step=1 --meta_step_final=0 --metatrain_iterations=100000 --test_num_updates=50 --eval_inner_batch_size=5 --val_interval=5000 --logdir=$LOGDIR/omniglot_reptile"
R20="--datasource=omniglot --num_classes=20 --algorithm=reptile --train_update_batch_size=10 --num_query=1 --inner_optimizer=adam --update_lr=0.0005 --num_updates=10 --inner_batch_size=20 --meta_batch_size=5 --meta_step=1 --meta_step_final=0 --metatrain_iterations=200000 --test_num_updates=50 --eval_inner_batch_size=10 --val_interval=5000 --logdir=$LOGDIR/omniglot_reptile"
run reptile-5way  $R5 --update_batch_size=1
run reptile-20way $R20 --update_batch_size=1
for K in 1 5; do
  for T in True False; do
    run reptile-5way-test  $R5 --update_batch_size=$K --train=False --test_set=True --transductive=$T
    run reptile-20way-test $R20 --update_batch_size=$K --train=False --test_set=True --transductive=$T
  done
done
# This project's first-order MAML on the same split, for the side-by-side table (MAML: the omniglot block)
FO5="--datasource=omniglot --metatrain_iterations=60000 --meta_batch_size=32 --update_batch_size=1 --update_lr=0.4 --num_updates=1 --stop_grad=True --logdir=$LOGDIR/omniglot5way/"
run fomaml-5way-1shot      $FO5
run fomaml-5way-1shot-test $FO5 --train=False --test_set=True
# END reptile
# Quiet seconds per meta-iteration of each run's training step (the real step, synthetic 28x28 tasks)
BENCH="$PY -m maml_tf.bench.benchmark --repeats 3"
REPTILE_SET="--set algorithm=reptile --set shots=10 --set queries=1 --set inner_optimizer=adam --set inner_lr=0.001 --set inner_steps=5 --set inner_batch_size=10 --set meta_batch_size=5"
if [ "$QUICK" = 0 ]; then
  report reptile-timing $BENCH --benches omniglot_5w1s_q1_o1 $REPTILE_SET --out "$LOGDIR/timing_reptile.jsonl"
  report reptile-timing $BENCH --benches omniglot_5w1s_q1_o2 --out "$LOGDIR/timing_maml.jsonl"
  report reptile-timing $BENCH --benches omniglot_5w1s_q1_o2 --set shots=5 --set queries=5 --out "$LOGDIR/timing_maml5.jsonl"
  report reptile-timing $BENCH --benches omniglot_5w1s_q1_o1 --out "$LOGDIR/timing_fomaml.jsonl"
fi
if wanted reptile-report; then report reptile-report "$PY" -m maml_tf.reports.reptile --out "$RESULTS" \
  --run "reptile=$(stored_or "$(dir_of $R5 --update_batch_size=1)")" \
  --run "maml=$(stored_or "$(dir_of $FO5 --stop_grad=False)")" \
  --run "maml5=$(stored_or "$(dir_of $FO5 --stop_grad=False --update_batch_size=5)")" \
  --run "fomaml=$(stored_or "$(dir_of $FO5)")" \
  $(for L in reptile maml maml5 fomaml; do [ -e "$LOGDIR/timing_$L.jsonl" ] && echo "--timing $L=$LOGDIR/timing_$L.jsonl"; done) \
  --commands "$(sed -n '/^# BEGIN reptile/,/^# END reptile/p' "$0")" \
  --notes "$(cat "$LOGDIR/reptile_notes.md" "$MAML_TF_RUN_STORE/reptile_notes.md" 2>/dev/null || true)"; fi

# BEGIN miniimagenet (needs the real images: data/README.md; 60k iterations; 600 test tasks)
# Model selection as the paper: 600 fixed meta-validation tasks every 2,000 iterations.
MINI="--datasource=miniimagenet --metatrain_iterations=60000 --update_lr=0.01 --num_updates=5 --num_classes=5 --num_filters=32 --max_pool=True --val_interval=2000 --num_val_tasks=600 --checkpoint_interval=500 --patience=20000"
for FO in False True; do
  # First order: miniimagenet-fo-*, so that `miniimagenet-1shot` runs (and tests) MAML alone.
  if [ "$FO" = True ]; then N=miniimagenet-fo; else N=miniimagenet; fi
  run $N-1shot      $MINI --meta_batch_size=4 --update_batch_size=1 --logdir=$LOGDIR/miniimagenet1shot --stop_grad=$FO
  run $N-1shot-test $MINI --meta_batch_size=4 --update_batch_size=1 --logdir=$LOGDIR/miniimagenet1shot --stop_grad=$FO --train=False --test_set=True
  run $N-1shot-test $MINI --meta_batch_size=4 --update_batch_size=1 --logdir=$LOGDIR/miniimagenet1shot --stop_grad=$FO --train=False --test_set=True --test_best=True
  run $N-5shot      $MINI --meta_batch_size=2 --update_batch_size=5 --logdir=$LOGDIR/miniimagenet5shot --stop_grad=$FO
  run $N-5shot-test $MINI --meta_batch_size=2 --update_batch_size=5 --logdir=$LOGDIR/miniimagenet5shot --stop_grad=$FO --train=False --test_set=True
  run $N-5shot-test $MINI --meta_batch_size=2 --update_batch_size=5 --logdir=$LOGDIR/miniimagenet5shot --stop_grad=$FO --train=False --test_set=True --test_best=True
done
# END miniimagenet
report miniimagenet-report "$PY" -m maml_tf.reports.miniimagenet --out "$RESULTS" \
  --logdir "$LOGDIR/miniimagenet1shot" --logdir "$LOGDIR/miniimagenet5shot" \
  --logdir "$MAML_TF_RUN_STORE/miniimagenet1shot" --logdir "$MAML_TF_RUN_STORE/miniimagenet5shot" \
  --commands "$(sed -n '/^# BEGIN miniimagenet/,/^# END miniimagenet/p' "$0")" \
  --notes "$(cat "$LOGDIR/miniimagenet_notes.md" "$MAML_TF_RUN_STORE/miniimagenet_notes.md" 2>/dev/null || true)"
[ "$QUICK" = 1 ] || report miniimagenet-speed "$PY" -m maml_tf.bench.time_miniimagenet --iterations=15 --print_interval=5

# Speed: the real meta-step on synthetic tasks, beside the PyTorch/JAX peers (bash ../shared/peers/setup.sh first)
[ "$QUICK" = 1 ] || report benchmark "$PY" -m maml_tf.bench.benchmark --peers ../shared/peers --compare onednn=on --compare onednn=off --repeats 2 --out "$LOGDIR/benchmark.jsonl"

# Several devices (results/distributed.md): 1 vs 2 replicas here; mirrored vs default on Omniglot
[ "$QUICK" = 1 ] || report distributed-timing bash maml_tf/bench/distributed_timing.sh "$LOGDIR/distributed_timing"
[ "$QUICK" = 1 ] || report distributed-drift "$PY" -m maml_tf.bench.distributed_drift \
  "${MAML_TF_DATA_DIR:-data}" "${MAML_TF_CACHE_DIR:-$HOME/.cache/maml_tf}"

# BEGIN maml_family (issue 41: Omniglot 20-way 1-shot, MAML and its successors by one flag each on the MAML
# paper's 20-way command, the same 5,000 iterations; tested on the same 600 tasks; then MAML++ at full length)
FAM="--datasource=omniglot --num_classes=20 --update_batch_size=1 --num_updates=5 --meta_batch_size=16 --update_lr=0.1 --metatrain_iterations=5000 --val_interval=500 --logdir=$LOGDIR/maml_family"
for V in "maml:" "anil:--anil" "metasgd:--learned_inner_lr=per_param" "lslr:--learned_inner_lr=per_layer_step" "msl:--multi_step_loss" "mamlpp:--maml_plus_plus"; do
  run family-${V%%:*}      $FAM ${V#*:}
  run family-${V%%:*}-test $FAM ${V#*:} --train=False --test_set=True
  run family-${V%%:*}-test $FAM ${V#*:} --train=False --test_set=True --test_best=True
done
# MAML++ at full length with its own released settings (HowToTrainYourMAMLPytorch,
# experiment_config/omniglot_maml++-omniglot_1_8_0.1_64_20_0.json): 8 tasks, 5 steps, max pooling,
# 100 epochs of 500 iterations; its inner step 0.1 on the mean loss is 0.1/20 on this loss
MPP="--datasource=omniglot --num_classes=20 --update_batch_size=1 --num_updates=5 --meta_batch_size=8 --update_lr=0.005 --test_num_updates=5 --max_pool=True --maml_plus_plus --metatrain_iterations=50000 --val_interval=500 --logdir=$LOGDIR/maml_family"
run mamlpp-full      $MPP
run mamlpp-full-test $MPP --train=False --test_set=True
run mamlpp-full-test $MPP --train=False --test_set=True --test_best=True
# END maml_family
report maml-family-report "$PY" -m maml_tf.reports.maml_family --out "$RESULTS" \
  --logdir "$LOGDIR/maml_family" --logdir "$MAML_TF_RUN_STORE/maml_family" \
  --commands "$(sed -n '/^# BEGIN maml_family/,/^# END maml_family/p' "$0")"

# BEGIN transfer (issue 15: MAML beside pretrained-then-fine-tuned baselines; same network, splits, 600 test tasks)
# Pretraining: supervised over all meta-train classes (Omniglot: 1,100 characters x 4 rotations = 4,400
# classes), best checkpoint by fine-tuned accuracy on 100 validation tasks. Each baseline's step size and
# batch-norm mode are chosen on 100 validation tasks (eval_val_* files) and read back by --choose.
choose() { "$PY" -m maml_tf.reports.transfer --choose "$@"; }
# transfer_lines DATA PRETRAIN_FLAGS SCRATCH_FLAGS WAYS:SHOTS...: validation grid, then test
transfer_lines() {
  local D=$1 PRE=$2 SCR=$3 WK S N V BN LR M CHOSEN
  shift 3
  for WK in "$@"; do
    S="--num_classes=${WK%:*} --update_batch_size=${WK#*:}" N=${WK%:*}w${WK#*:}s V="--train=False --num_test_tasks=100"
    for BN in batch moving; do
      for LR in 0.1 0.4; do run transfer-$D-val-$N $PRE $S $V --finetune=all --finetune_bn=$BN --update_lr=$LR; done
      for LR in 0.4 2; do run transfer-$D-val-$N $PRE $S $V --finetune=head --finetune_bn=$BN --update_lr=$LR; done
      run transfer-$D-val-$N $PRE $S $V --finetune=nearest --finetune_bn=$BN
    done
    for LR in 0.1 1; do run transfer-$D-val-$N $PRE $S $V --finetune=cosine --update_lr=$LR; done
    for LR in 0.1 0.4; do run transfer-$D-val-$N $SCR $S $V --update_lr=$LR; done
    for M in all head nearest cosine; do
      CHOSEN=""
      wanted transfer-$D-test-$N && CHOSEN=$(choose "$(dir_of $PRE)" --method=$M --ways=${WK%:*} --shots=${WK#*:})
      run transfer-$D-test-$N $PRE $S --train=False --test_set=True --finetune=$M $CHOSEN
    done
    CHOSEN=""
    wanted transfer-$D-test-$N && CHOSEN=$(choose "$(dir_of $SCR)" --method=all --ways=${WK%:*} --shots=${WK#*:})
    run transfer-$D-test-$N $SCR $S --train=False --test_set=True $CHOSEN
  done
}
OPRE="--datasource=omniglot --baseline=pretrained --metatrain_iterations=0 --pretrain_iterations=5000 --pretrain_batch_size=64 --pretrain_lr=0.1 --update_batch_size=1 --update_lr=0.1 --test_num_updates=10 --val_interval=1000 --num_val_tasks=100 --checkpoint_interval=500 --logdir=$LOGDIR/omniglot_transfer"
OSCR="--datasource=omniglot --baseline=scratch --metatrain_iterations=0 --test_num_updates=10 --logdir=$LOGDIR/omniglot_transfer"
run transfer-omniglot-pretrain $OPRE
transfer_lines omniglot "$OPRE" "$OSCR" 5:1 5:5 20:1 20:5
# MiniImageNet: the 64 training classes (38,400 images); tasks as MAML's test lines (K queries per class).
MPRE="--datasource=miniimagenet --num_filters=32 --max_pool=True --baseline=pretrained --metatrain_iterations=0 --pretrain_iterations=6000 --pretrain_batch_size=64 --pretrain_lr=0.1 --update_batch_size=1 --update_lr=0.1 --test_num_updates=10 --val_interval=1000 --num_val_tasks=100 --checkpoint_interval=250 --logdir=$LOGDIR/miniimagenet_transfer"
MSCR="--datasource=miniimagenet --num_filters=32 --max_pool=True --baseline=scratch --metatrain_iterations=0 --test_num_updates=10 --logdir=$LOGDIR/miniimagenet_transfer"
run transfer-miniimagenet-pretrain $MPRE
transfer_lines miniimagenet "$MPRE" "$MSCR" 5:1 5:5
# END transfer
if wanted transfer-report; then report transfer-report "$PY" -m maml_tf.reports.transfer --out "$RESULTS" \
  --pretrained "omniglot=$(stored_or "$(dir_of $OPRE)")" --scratch "omniglot=$(stored_or "$(dir_of $OSCR)")" \
  --pretrained "miniimagenet=$(stored_or "$(dir_of $MPRE)")" --scratch "miniimagenet=$(stored_or "$(dir_of $MSCR)")" \
  --earlier "$RESULTS/transfer.json" \
  --commands "$(sed -n '/^# BEGIN transfer/,/^# END transfer/p' "$0")" \
  --notes "$(cat "$LOGDIR/transfer_notes.md" "$MAML_TF_RUN_STORE/transfer_notes.md" 2>/dev/null || true)"; fi

# BEGIN 2dnavigation (Section 5.3, Figure 4: TRPO meta-optimizer, 20 goals x 20 paths, alpha 0.1, 500 iterations)
NAV="--datasource=2dnavigation --logdir=$LOGDIR/rl"
run nav-maml             $NAV --metatrain_iterations=500
run nav-pretrained       $NAV --pretrain_iterations=500 --metatrain_iterations=0
run nav-maml-fo          $NAV --metatrain_iterations=100 --stop_grad=True
run nav-maml-test        $NAV --metatrain_iterations=500 --train=False --test_set=True
[ "$QUICK" = 1 ] || run nav-maml-test $NAV --metatrain_iterations=500 --train=False --test_set=True --test_iter=100
run nav-maml-fo-test     $NAV --metatrain_iterations=100 --stop_grad=True --train=False --test_set=True
run nav-random-test      $NAV --metatrain_iterations=0 --train=False --test_set=True
# The pretrained policy's test step sizes (first:later), tried on the validation goals.
for LRS in 0.1:0.05 0.03:0.015 0.01:0.005 0.003:0.0015 0.001:0.0005; do
  run nav-pretrained-val $NAV --pretrain_iterations=500 --metatrain_iterations=0 --train=False --update_lr=${LRS%:*} --later_update_lr=${LRS#*:}
done
run nav-pretrained-test  $NAV --pretrain_iterations=500 --metatrain_iterations=0 --train=False --test_set=True
run nav-pretrained-test  $NAV --pretrain_iterations=500 --metatrain_iterations=0 --train=False --test_set=True --update_lr=0.01 --later_update_lr=0.005
# END 2dnavigation
if wanted nav-report; then
NAV_MAML=$(dir_of $NAV --metatrain_iterations=500) NAV_PRE=$(dir_of $NAV --pretrain_iterations=500 --metatrain_iterations=0)
report nav-report "$PY" -m maml_tf.reports.rl_navigation --out "$RESULTS" \
  --maml "$NAV_MAML" --pretrained "$NAV_PRE" --random "$(dir_of $NAV --metatrain_iterations=0)" \
  --also "pretrained, validation-chosen step sizes=$NAV_PRE/eval_test_goals40_lr0.01-0.005_iter500.json" \
  --also "MAML, earlier checkpoint=$NAV_MAML/eval_test_goals40_lr0.1-0.05_iter100.json" \
  --also "first-order MAML (--stop_grad)=$(dir_of $NAV --metatrain_iterations=100 --stop_grad=True)/eval_test_goals40_lr0.1-0.05_iter100.json" \
  --trajectories "maml;pretrained;pretrained, validation-chosen step sizes" \
  --commands "$(sed -n '/^# BEGIN 2dnavigation/,/^# END 2dnavigation/p' "$0")"; fi
if [ -n "$ONLY" ] && [ "$MATCHED" = 0 ]; then
  echo "error: no run or report line's name contains '$ONLY'"
  exit 1
fi
