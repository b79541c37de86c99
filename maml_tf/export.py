"""`python -m maml_tf.export --run DIR --out DIR`: a run's meta-learned model as a TensorFlow SavedModel that adapts and predicts."""

import math
import os
import sys
import time

from maml_tf import quiet  # noqa: F401  (before TensorFlow loads: its start-up lines held back)
from maml_tf.errors import OneLineParser, UserError
from maml_tf.workdir.rundir import check_writable


def parse(argv):
    parser = OneLineParser(prog="python -m maml_tf.export",
                                     description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("--run", required=True, help="run directory, or a model.keras maml_tf wrote")
    parser.add_argument("--out", required=True, help="new directory for the SavedModel")
    parser.add_argument("--shots", type=int, default=None,
                        help="support examples per class the signature takes (default: the run's evaluation K)")
    parser.add_argument("--ways", type=int, default=None,
                        help="classes per task the signature takes, at most the head's (default: all of them)")
    parser.add_argument("--steps", type=int, default=None, help="inner steps (default: the run's)")
    parser.add_argument("--inner_lr", type=float, default=None, help="inner step size (default: the run's)")
    parser.add_argument("--iteration", type=int, default=None, help="checkpoint of a run directory (default: newest)")
    return parser.parse_args(argv)


def savedmodel_dir_free(directory: str):
    """UserError unless `directory` is absent or an empty directory, under a writable parent."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UserError(f"--out {directory} is a file: give a new directory")
    if os.path.isdir(directory) and os.listdir(directory):
        raise UserError(f"{directory} exists and is not empty: give a new directory")
    check_writable(directory, "--out")


def main(argv=None):
    args = parse(argv)
    try:
        if args.steps is not None and args.steps < 0 or args.inner_lr is not None and not (
                math.isfinite(args.inner_lr) and args.inner_lr > 0):
            raise UserError("--steps must be >= 0 and --inner_lr positive and finite")
        savedmodel_dir_free(args.out)  # before the model loads
        from maml_tf.deploy import loading, savedmodel

        meta = loading.load(args.run, args.iteration)
        shots = meta.config.eval_shots if args.shots is None else args.shots
        start = time.perf_counter()
        ways = meta.num_classes if args.ways is None else args.ways
        savedmodel.export(meta, args.out, shots, args.steps, args.inner_lr, ways)
        size = savedmodel.size_on_disk(args.out)
        examples, task = ((shots, f"{shots}-shot regression") if meta.problem == "regression"
                          else (ways * shots, f"{ways}-way {shots}-shot"))
        print(f"wrote {args.out}: signature {savedmodel.SIGNATURE}(support_x "
              f"[{examples}, {', '.join(map(str, meta.input_shape))}], support_y, query_x) "
              f"for {task}, {size / 1e6:.2f} MB, {time.perf_counter() - start:.1f} s")
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
