"""A sinusoid run's fits (the paper's Figure 2): its network before and after 1 and 10 steps on a few tasks, as RUN_DIR/fits.png.

Usage: python -m maml_tf.reports.fits RUN_DIR
"""

import json
import os
import sys

from maml_tf import quiet  # noqa: F401  (before TensorFlow loads: its start-up lines held back)
from maml_tf.errors import OneLineParser, UserError
from maml_tf.reports.sinusoid import figure_curves, restore


def check_run(run_dir: str):
    """UserError unless `run_dir` holds a sinusoid run (read before TensorFlow loads)."""
    try:
        with open(os.path.join(run_dir, "config.json")) as f:
            config = json.load(f)
    except OSError as err:
        raise UserError(f"{run_dir} is not a run directory: no readable config.json ({err.strerror})") from None
    except ValueError:
        raise UserError(f"{os.path.join(run_dir, 'config.json')} is damaged (not JSON)") from None
    dataset = config.get("dataset") if isinstance(config, dict) else None
    if dataset != "sinusoid":
        raise UserError(f"{run_dir} is a {dataset} run: fits are drawn for sinusoid runs")
    if config.get("oracle"):
        raise UserError(f"{run_dir} is an oracle run: its network reads each task's amplitude and "
                        "phase beside x, so it has no curve of x alone to draw")


def main(argv=None):
    parser = OneLineParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    args = parser.parse_args(argv)
    path = os.path.join(args.run_dir, "fits.png")
    try:
        check_run(args.run_dir)
        meta = restore(args.run_dir)
        figure_curves({"run": meta}, path, shots=meta.config.eval_shots)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
