"""Optional: builds (or checks) the cached 28x28 Omniglot array now, so the first run starts at once.

    python data/prepare_omniglot.py [--data_dir DIR] [--cache_dir DIR] [--source files|tfds]
                                    [--resize original|lanczos]

Training does the same on first use; this script only does it ahead of time.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from maml_tf.datasets import omniglot_data  # noqa: E402
from maml_tf.errors import UserError  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=os.environ.get("MAML_TF_DATA_DIR") or "data",
                        help="holds omniglot/images_{background,evaluation}.zip ($MAML_TF_DATA_DIR)")
    parser.add_argument("--cache_dir", default=os.environ.get("MAML_TF_CACHE_DIR")
                        or os.path.join(os.path.expanduser("~"), ".cache", "maml_tf"),
                        help="writable cache ($MAML_TF_CACHE_DIR, else ~/.cache/maml_tf)")
    parser.add_argument("--source", choices=omniglot_data.SOURCES, default="files")
    parser.add_argument("--resize", choices=omniglot_data.RESIZES, default="original")
    args = parser.parse_args()
    start = time.time()
    try:
        data = omniglot_data.load(args.data_dir, args.cache_dir, args.source, args.resize)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    print(f"omniglot ready in {time.time() - start:.1f} s: {data.images.shape[0]} characters "
          f"({int(data.background.sum())} background) x {data.images.shape[1]} drawings, "
          f"{data.images.shape[2]}x{data.images.shape[3]}, ink fraction "
          f"{data.images.mean() / 255:.3f}; cache under {os.path.join(args.cache_dir, 'omniglot')}")


if __name__ == "__main__":
    main()
