"""`python -m maml_tf.classify --model PATH --support DIR --query DIR`: adapt a meta-learned model to your labelled images, classify others.

The support folder has one sub-folder per class (its name is the class) holding that class's few
images; the query folder holds the images to classify. Images of any size and format are prepared
as the model's training data was (maml_tf/deploy/images.py). Prints, and writes as CSV, each query
image's predicted class and its probability.
"""

import csv
import io
import os
import sys

from maml_tf import quiet  # noqa: F401  (before TensorFlow loads: its start-up lines held back)
from maml_tf.errors import OneLineParser, UserError


def parse(argv):
    parser = OneLineParser(prog="python -m maml_tf.classify",
                                     description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("--model", required=True, help="run directory, or a model.keras maml_tf wrote")
    parser.add_argument("--support", required=True, help="folder of class folders, each with its few images")
    parser.add_argument("--query", required=True, help="folder of images to classify")
    parser.add_argument("--out", default="predictions.csv", help="CSV to write (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None, help="inner steps (default: the run's)")
    parser.add_argument("--inner_lr", type=float, default=None, help="inner step size (default: the run's)")
    return parser.parse_args(argv)


def predictions_csv(files, classes, probabilities) -> str:
    """file,predicted_class,probability; one row per query image."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file", "predicted_class", "probability"])
    for name, p in zip(files, probabilities):
        best = int(p[:len(classes)].argmax())  # only the classes the support set names
        writer.writerow([name, classes[best], f"{p[best]:.6f}"])
    return out.getvalue()


def check_out(path: str):
    """UserError unless `path` can be written: checked before the work, not after it."""
    if not path or os.path.isdir(path) or path.endswith(os.sep):
        raise UserError(f"--out {path!r} is not a file name: give one for the CSV")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError(f"--out {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or os.path.exists(path) and not os.access(path, os.W_OK):
        raise UserError(f"--out {path} cannot be written (no permission)")


def write_out(path: str, text: str):
    """The CSV, once the predictions are printed: a failure here loses nothing shown."""
    try:
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:  # names as on disk
            f.write(text)
    except OSError as err:
        raise UserError(f"predictions printed above but not written to {path}: "
                        f"{err.strerror or err}") from None
    print(f"wrote {path}", file=sys.stderr)


def main(argv=None):
    args = parse(argv)
    try:
        if args.steps is not None and args.steps < 0 or args.inner_lr is not None and not args.inner_lr > 0:
            raise UserError("--steps must be >= 0 and --inner_lr positive")
        check_out(args.out)
        from maml_tf.deploy import images, loading

        meta = loading.load(args.model)
        dataset, resize = meta.config.dataset, meta.config.omniglot_resize
        if not images.takes_images(dataset):
            raise UserError(f"{args.model} is a {dataset} model: it does not classify images")
        shape = tuple(meta.model.input_shape[1:])  # a folder model's own image size and channels
        x, y, classes = images.support_folder(args.support, meta.num_classes, dataset, resize, shape)
        q, files = images.query_folder(args.query, dataset, resize, shape)
        text = predictions_csv(files, classes, meta.predict(x, y, q, args.steps, args.inner_lr))
        print(text, end="", flush=True)
        write_out(args.out, text)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
