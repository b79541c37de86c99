"""A sinusoid run's fits (the paper's Figure 2): its network before and after 1 and 10 steps on a few tasks, as RUN_DIR/fits.png.

Usage: python -m maml_tf.reports.fits RUN_DIR
"""

import argparse
import os

from maml_tf.reports.sinusoid import figure_curves, restore


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    args = parser.parse_args()
    path = os.path.join(args.run_dir, "fits.png")
    exp = restore(args.run_dir)
    figure_curves({"maml": exp}, path, shots=exp.config.eval_shots, inner_lr=exp.config.eval_inner_lr)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
