"""Command line with the original code's flag names: flags -> Config -> train or evaluate."""

import os
import shlex
import signal
import sys

from maml_tf import quiet  # noqa: F401  (first: TensorFlow's start-up lines held back)
from absl import app, flags, logging  # noqa: E402

from maml_tf.experiment import runtime  # noqa: E402
from maml_tf import flag_definitions  # noqa: E402
from maml_tf.experiment.run_id import existing_name, identity_fields, pretraining_fields  # noqa: E402
from maml_tf.rl.config import IDENTITY_FIELDS as RL_IDENTITY_FIELDS  # noqa: E402
from maml_tf.workdir import identity, snapshot  # noqa: E402
from maml_tf.workdir.interrupts import Interrupted  # noqa: E402
from maml_tf.datasets import choose_network, own_images  # noqa: E402
from maml_tf.errors import UserError  # noqa: E402
from maml_tf.flags_map import config_from_flags  # noqa: E402

flags.adopt_module_key_flags(flag_definitions)  # --help lists them as this module's
FLAGS = flags.FLAGS


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
