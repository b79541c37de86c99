"""Command line with the original code's flag names: flags -> Config -> train or evaluate."""

import os
import shlex
import signal
import sys

from maml_tf import quiet  # noqa: F401  (first: TensorFlow's start-up lines held back)
from absl import app, flags, logging  # noqa: E402

from maml_tf.experiment import runtime  # noqa: E402
from maml_tf import flag_definitions  # noqa: E402
from maml_tf.experiment.config import Config  # noqa: E402
from maml_tf.experiment.run_id import existing_name, identity_fields, pretraining_fields  # noqa: E402
from maml_tf.rl.config import IDENTITY_FIELDS as RL_IDENTITY_FIELDS  # noqa: E402
from maml_tf.workdir import identity, snapshot  # noqa: E402
from maml_tf.workdir.interrupts import Interrupted  # noqa: E402
from maml_tf.datasets import choose_network, own_images  # noqa: E402
from maml_tf.errors import UserError  # noqa: E402
from maml_tf.flag_definitions import CACHE_ENV, DATA_ENV, STORE_ENV  # noqa: E402

flags.adopt_module_key_flags(flag_definitions)  # --help lists them as this module's
FLAGS = flags.FLAGS


def _refuse_unread(f):
    """UserError for a flag given that a supervised run would not read (silently kept, it looks in
    effect): the RL ones, the fine-tuning of a run that is no transfer baseline, and the logical
    CPUs of a run that is not mirrored."""
    why = {name: "the RL flags are for 2dnavigation" for name in flag_definitions.RL_ONLY}
    if f.baseline not in ("pretrained", "scratch"):
        why.update(dict.fromkeys(("finetune", "finetune_bn"),
                                 "--finetune(_bn) for --baseline=pretrained/scratch"))
    if f.strategy != "mirrored":
        why["num_cpu_devices"] = "--num_cpu_devices for --strategy=mirrored"
    given = [n for n in why if f[n].present and f[n].value != f[n].default]
    if given:
        reasons = ", ".join(dict.fromkeys(why[n] for n in given))
        raise UserError(f"--{', --'.join(given)}: not read by this run (--datasource={f.datasource}"
                        f"{'' if f.baseline in (None, 'None') else f', --baseline={f.baseline}'}): "
                        f"{reasons}")


def config_from_flags(f) -> Config:
    """Maps the original's flag names onto the library's vocabulary, once."""
    _refuse_unread(f)
    train_k = f.train_update_batch_size if f.train_update_batch_size != -1 else f.update_batch_size
    train_lr = f.train_update_lr if f.train_update_lr != -1 else f.update_lr
    default_query = 15 if f.datasource == "miniimagenet" else train_k
    if f.baseline not in (None, "None", "oracle", "pretrained", "scratch"):
        raise UserError(f"unknown baseline {f.baseline!r}: use oracle, pretrained, scratch or leave it unset")
    transfer = f.baseline if f.baseline in ("pretrained", "scratch") else "none"
    if f.grad_clip < 0 and f.grad_clip != -1:
        raise UserError(f"--grad_clip must be >= 0 (0: off) or -1 (10 for miniimagenet, else off), "
                        f"got {f.grad_clip:g}")
    # A baseline meta-trains nothing: the default iteration target would only be refused.
    metatrain = 0 if transfer != "none" and not f["metatrain_iterations"].present \
        else f.metatrain_iterations
    return Config(
        dataset=f.datasource, ways=f.num_classes, shots=train_k,
        queries=f.num_query if f.num_query != -1 else default_query,
        eval_shots=f.update_batch_size,
        eval_queries=f.num_query if f.num_query != -1 else f.update_batch_size,
        meta_batch_size=f.meta_batch_size, meta_lr=f.meta_lr, inner_lr=train_lr,
        eval_inner_lr=f.update_lr, inner_steps=f.num_updates, eval_inner_steps=f.test_num_updates,
        first_order=f.stop_grad, algorithm=f.algorithm, inner_batch_size=f.inner_batch_size,
        inner_optimizer=f.inner_optimizer, meta_step=f.meta_step, meta_step_final=f.meta_step_final,
        eval_inner_batch_size=f.eval_inner_batch_size, transductive=f.transductive,
        pretrain_iterations=f.pretrain_iterations, metatrain_iterations=metatrain,
        oracle=f.baseline == "oracle", baseline=transfer, finetune=f.finetune,
        finetune_bn=f.finetune_bn, pretrain_batch_size=f.pretrain_batch_size,
        pretrain_lr=f.pretrain_lr, norm=f.norm, num_filters=f.num_filters, conv=f.conv,
        max_pool=f.max_pool,
        grad_clip=f.grad_clip if f.grad_clip >= 0 else (10.0 if f.datasource == "miniimagenet" else 0.0),
        seed=f.seed, eval_seed=f.eval_seed, eval_tasks=f.num_test_tasks,
        eval_split="test" if f.test_set else "val", eval_record_steps=f.record_steps,
        val_interval=f.val_interval,
        val_tasks=f.num_val_tasks, checkpoint_interval=f.checkpoint_interval,
        print_interval=f.print_interval, log=f.log, onednn=f.onednn, jit_compile=f.jit_compile,
        intra_op_threads=f.intra_op_threads,
        strategy=f.strategy, num_cpu_devices=f.num_cpu_devices,
        data_dir=f.data_dir or os.environ.get(DATA_ENV) or "data", data_source=f.data_source,
        omniglot_split=f.omniglot_split, omniglot_resize=f.omniglot_resize,
        folder_split=f.folder_split, image_size=f.image_size, channels=f.channels,
        min_class_images=f.min_class_images,
        patience=f.patience, run_store=_run_store(f),
        train=f.train, resume=f.resume, test_iter=f.test_iter, test_best=f.test_best,
        eval_dir=f.eval_dir or None, cache_dir=f.cache_dir or os.environ.get(CACHE_ENV)
        or os.path.join(os.path.expanduser("~"), ".cache", "maml_tf"),
        **variant_settings(f))


def _run_store(f):
    """--run_store (else $MAML_TF_RUN_STORE), refused if it is no folder: a mistyped path would
    start a stored run over from iteration 0 instead of continuing it."""
    store = f.run_store or os.environ.get(STORE_ENV) or None
    if store and not os.path.isdir(store):
        given = "--run_store" if f.run_store else f"${STORE_ENV}"
        raise UserError(f"{given}={store}: no such folder (the stored runs' folder, e.g. "
                        "results/runs; leave it unset to keep no run store)")
    return store


def variant_settings(f) -> dict:
    """The MAML successors' flags as Config fields; --maml_plus_plus turns MAML++'s parts on,
    but a part's own flag, given, wins (an ablation: --maml_plus_plus --nomulti_step_loss)."""
    learned, msl, cosine = f.learned_inner_lr, f.multi_step_loss, f.cosine_meta_lr
    bnwb = f.per_step_bn_weights
    if f.maml_plus_plus:
        if f.algorithm != "maml":  # its parts are refused with Reptile, each by its own name
            raise UserError(f"--maml_plus_plus is a MAML successor, not for --algorithm={f.algorithm}")
        if learned == "per_param":
            raise UserError("--maml_plus_plus learns per-layer, per-step step sizes (LSLR): drop "
                            "--learned_inner_lr=per_param")
        several = f.num_updates >= 2  # one inner step has no steps to weigh or to tell apart
        part = lambda name, on: getattr(f, name) if f[name].present else on  # noqa: E731
        learned = part("learned_inner_lr", "per_layer_step")
        msl, cosine = part("multi_step_loss", several), part("cosine_meta_lr", True)
        bnwb = part("per_step_bn_weights", several and f.norm == "batch_norm")
        if learned == "none" and not (msl or cosine or bnwb):  # under a name that says MAML++
            raise UserError("--maml_plus_plus with every one of its parts switched off is plain "
                            "MAML: drop --maml_plus_plus")
    anneal = f.msl_anneal_iterations
    if anneal == -1:  # MAML++'s multi_step_loss_num_epochs x total_iter_per_epoch
        anneal = 7500 if msl and f.datasource == "miniimagenet" else 5000
    return dict(anil=f.anil, learned_inner_lr=learned, multi_step_loss=msl,
                msl_anneal_iterations=anneal, first_order_iterations=f.first_order_iterations,
                cosine_meta_lr=cosine, min_meta_lr=f.min_meta_lr, per_step_bn_weights=bnwb)


def run_directory(logdir: str, name: str) -> str:
    """--logdir/--run_name, refusing what would put the run elsewhere: an empty --logdir (the
    working directory), a name that leaves --logdir (.., an absolute path: the run store would
    follow it) or nests folders (a/b)."""
    if not logdir:
        raise UserError("--logdir is empty: give the folder that holds the run directories")
    if name in (".", "..") or os.path.isabs(name) or "/" in name or os.sep in name \
            or (os.altsep and os.altsep in name):
        raise UserError(f"--run_name={name} must be one folder name inside --logdir "
                        "(no '/', not '.' or '..')")
    return os.path.join(logdir, name)


def _load_tensorflow():
    """Imports TensorFlow (only once the flags are known to be good; `quiet` holds back its
    start-up lines) with its Python info logs quiet."""
    import tensorflow as tf

    tf.get_logger().setLevel("WARNING")
    logging.set_verbosity(logging.WARNING)


def config_and_workdir(f):
    """The run's Config (an RLConfig for 2dnavigation) and its directory, from the flags."""
    if f.datasource == "2dnavigation":
        from maml_tf.rl import flags_map
        from maml_tf.rl.config import run_name as rl_run_name

        if f.strategy != "default":
            raise UserError("--strategy is for supervised meta-learning; 2dnavigation runs on one device")
        config = flags_map.config_from_flags(f)
        return config, run_directory(f.logdir, f.run_name or rl_run_name(config))
    config = config_from_flags(f)
    if own_images(config.dataset) and config.conv and not (f["max_pool"].present or
                                                           f["num_filters"].present):
        config = choose_network(config)  # the paper's net for these images, as it is for its own
    workdir = run_directory(f.logdir, f.run_name or existing_name(config, f.logdir))
    return _reptile_queries(f, config, workdir), workdir


def _reptile_queries(f, config, workdir):
    """A Reptile evaluation without --num_query tests with the query count its run validated
    with, at any K (its rows' protocol), as the run (or its stored copy) recorded it."""
    if config.algorithm != "reptile" or config.train or f["num_query"].present:
        return config
    stored = config.run_store and snapshot.store_dir(config.run_store, workdir)
    for where in filter(None, (workdir, stored)):
        saved = identity.saved_settings(where, ("eval_queries",)) if os.path.isdir(where) else None
        if saved and isinstance(saved.get("eval_queries"), int):
            return config.replace(eval_queries=saved["eval_queries"])
    return config


def execute(config, workdir):
    """Trains or evaluates the run `config` defines in `workdir` (config validated once)."""
    config = config.validate()
    if FLAGS.baseline == "scratch" and config.train:
        raise UserError("--baseline=scratch trains nothing: evaluate it with --train=False")
    if config.train and FLAGS.strategy != "multi_worker":  # its workers share the chief's lock
        identity.check_before_start(workdir, identity.as_dict(config), training_fields(config))
    if FLAGS.datasource == "2dnavigation":
        _load_tensorflow()
        from maml_tf.rl import evaluate as rl_evaluate, train as rl_train

        return rl_train.train(config, workdir) if config.train else rl_evaluate.evaluate_run(config, workdir)
    runtime.configure(config)  # before TensorFlow loads
    _load_tensorflow()
    from maml_tf.experiment import evaluate, train
    from maml_tf.transfer import baselines, pretrain

    if config.baseline != "none":
        return (pretrain.pretrain if config.train else baselines.evaluate_baseline)(config, workdir)
    if not config.train:
        return evaluate.evaluate_checkpoint(config, workdir)
    train.train_and_evaluate(config, workdir)
    print(f"evaluate it: {evaluate_command(sys.argv)}", flush=True)


def training_fields(config) -> tuple:
    """The settings a run trained by `config` must share with the one in its directory: checked
    here, before TensorFlow's ~5 s import, so that a second process on a run or other settings
    are refused at once (the loop looks again once it holds the run's lock)."""
    if FLAGS.datasource == "2dnavigation":
        return RL_IDENTITY_FIELDS
    return identity_fields(config) if config.baseline == "none" else pretraining_fields()


def main(argv):
    if len(argv) > 1:
        print(f"error: unexpected arguments: {' '.join(argv[1:])} (flags are written "
              "--name=value; --helpshort lists them)", file=sys.stderr)
        sys.exit(1)
    logging.set_verbosity(logging.WARNING)  # a library's info lines (tensorflow-datasets') held back
    try:
        config, workdir = config_and_workdir(FLAGS)
        if FLAGS.print_run_dir:  # the settings checked as a run checks them, the data not read
            config.validate() if FLAGS.datasource == "2dnavigation" else config.check_settings()
            return print(workdir)
        execute(config, workdir)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except Interrupted as stop:
        print(f"interrupted: {stop}", file=sys.stderr)
        sys.exit(stop.code)
    except KeyboardInterrupt:  # Ctrl-C outside the training loop (startup, evaluation)
        print("interrupted: SIGINT before training started or during an evaluation; "
              "nothing was saved", file=sys.stderr)
        sys.exit(130)


def evaluate_command(argv) -> str:
    """This command line with --train=False: the evaluation of the run it trained."""
    keep = [a for a in argv[1:] if not a.lstrip("-").split("=")[0] in ("train", "notrain", "resume", "noresume")]
    return shlex.join(["python", "-m", "maml_tf.main", *keep, "--train=False"])


def parse_flags(argv):
    """absl's flag parsing, with a flag it cannot parse said in one line (exit 1)."""
    try:
        return FLAGS(argv)
    except flags.Error as err:
        print(f"error: {' '.join(str(err).split())} (--helpshort lists the flags)", file=sys.stderr)
        sys.exit(1)
    except SystemExit as done:  # absl's --help, --helpshort, --helpfull print and exit 1
        asked = {"--help", "-help", "--helpshort", "--helpfull", "--helpxml", "-?"}
        if done.code == 1 and asked & {a.split("=")[0] for a in argv[1:]}:
            sys.exit(0)
        raise


def run():
    # Ctrl-C before the training loop takes it over: a KeyboardInterrupt (one line, exit 130),
    # even when started by a shell that ignores SIGINT for its background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
