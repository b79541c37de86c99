"""Seconds per meta-iteration of the original README's miniImageNet commands, on synthetic 84x84 images.

Writes a synthetic set in the processed layout (64/16/20 classes x 20 random JPEGs; the real
images are not on this machine), runs each command through `python -m maml_tf.main` with
`--metatrain_iterations=N --print_interval=P`, and times the progress lines after the first (whose
interval also pays for tracing). Speed does not depend on the pixel values; accuracy does,
so nothing here says anything about accuracy.

    python -m maml_tf.bench.time_miniimagenet [--iterations=15 --print_interval=5]
"""

import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from maml_tf.errors import OneLineParser

README = ("--datasource=miniimagenet --metatrain_iterations=60000 --meta_batch_size=4 "
          "--update_batch_size=1 --update_lr=0.01 --num_updates=5 --num_classes=5 "
          "--logdir=logs/miniimagenet1shot/ --num_filters=32 --max_pool=True")
CONFIGS = {
    "1-shot, second order": README,
    "1-shot, first order": README + " --stop_grad=True",
    "5-shot, second order": README.replace("update_batch_size=1", "update_batch_size=5")
    .replace("meta_batch_size=4", "meta_batch_size=2").replace("1shot", "5shot"),
}
CONFIGS["5-shot, first order"] = CONFIGS["5-shot, second order"] + " --stop_grad=True"


def write_synthetic(data_dir, per_class=20):
    rng = np.random.default_rng(0)
    for split, n, first in (("train", 64, 0), ("val", 16, 64), ("test", 20, 80)):
        for c in range(first, first + n):
            folder = os.path.join(data_dir, "miniimagenet", split, f"n9{c:07d}")
            os.makedirs(folder, exist_ok=True)
            for i in range(per_class):
                small = rng.integers(0, 256, (7, 7, 3), dtype=np.uint8)
                Image.fromarray(small).resize((84, 84), Image.BICUBIC).save(
                    os.path.join(folder, f"n9{c:07d}{i:08d}.jpg"))


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def time_command(flags, work, data_dir, iterations, interval):
    argv = [f for f in flags.split() if not f.startswith(("--metatrain_iterations", "--logdir"))]
    argv += [f"--metatrain_iterations={iterations}", f"--print_interval={interval}",
             "--val_interval=0", f"--checkpoint_interval={iterations}", "--log=False",
             f"--logdir={work}", f"--data_dir={data_dir}", f"--cache_dir={work}/cache"]
    before, t0 = loadavg(), time.time()
    proc = subprocess.Popen([sys.executable, "-m", "maml_tf.main", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    stamps = []  # arrival time of each progress line (the printed rate has 3 digits only)
    for line in proc.stdout:
        if line.startswith("[metatrain] iter"):
            stamps.append(time.time())
    if proc.wait() != 0 or len(stamps) < 2:
        raise SystemExit(f"the command failed or printed too few progress lines: {argv}")
    seconds = (stamps[-1] - stamps[0]) / ((len(stamps) - 1) * interval)  # after the first line
    return seconds, time.time() - t0, before, loadavg()


def main():
    parser = OneLineParser()
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--print_interval", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        data_dir = os.path.join(work, "data")
        write_synthetic(data_dir)
        print(f"{os.cpu_count()} CPUs; {args.iterations} iterations per command, s/it from "
              f"iterations {args.print_interval + 1}..{args.iterations}")
        print("| config | s / meta-iteration | wall (s) | loadavg before | loadavg after |")
        print("|---|---|---|---|---|")
        for name, flags in CONFIGS.items():
            s, wall, before, after = time_command(flags, os.path.join(work, name.replace(" ", "")),
                                                  data_dir, args.iterations, args.print_interval)
            print(f"| {name} | {s:.2f} | {wall:.0f} | {before} | {after} |", flush=True)


if __name__ == "__main__":
    main()
