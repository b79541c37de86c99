"""results/miniimagenet.{md,json} and its meta-validation plot, from the run directories of the paper's Table 2 rows.

    python -m maml_tf.reports.miniimagenet --out results --logdir DIR [--logdir DIR ...] [--commands TEXT]

Numbers are read from the runs' own files, live or kept in results/runs; nothing is typed in
except the paper's numbers.
"""

from typing import Dict, List

from maml_tf.reports.runs import paper_row, report_main, table, tail
from maml_tf.reports.writer import hardware

PAPER_ITERATIONS, TEST_STEPS = 60000, 10
# (name, run directory as `run_id.run_name` builds it, K, the paper's accuracy ± 95% CI in %)
SETTINGS = [
    ("5-way 1-shot, MAML", "miniimagenet.5way1shot.maml.mbs4.steps5.lr0.01.conv32.maxpool", 1, (48.70, 1.84)),
    ("5-way 1-shot, first-order MAML", "miniimagenet.5way1shot.maml_fo.mbs4.steps5.lr0.01.conv32.maxpool",
     1, (48.07, 1.75)),
    ("5-way 5-shot, MAML", "miniimagenet.5way5shot.maml.mbs2.steps5.lr0.01.conv32.maxpool", 5, (63.11, 0.92)),
    ("5-way 5-shot, first-order MAML", "miniimagenet.5way5shot.maml_fo.mbs2.steps5.lr0.01.conv32.maxpool",
     5, (63.15, 0.91)),
]


def collect(logdirs: List[str]) -> List[Dict]:
    return [{"setting": name, "paper": {"mean": paper[0], "ci95": paper[1]}, "paper_steps": TEST_STEPS,
             **paper_row(logdirs, run, shots, TEST_STEPS, PAPER_ITERATIONS)}
            for name, run, shots, paper in SETTINGS]


def markdown(rows: List[Dict], commands: str, notes: str = "") -> str:
    lines = ["# MiniImageNet (Table 2 of Finn et al. 2017), MAML and first-order MAML, meta-test split",
             "", f"Hardware: {hardware(rows)}. Data: the real miniImageNet of Ravi & Larochelle (64/16/20 "
             "classes x 600 84x84 images; see data/README.md), decoded by Pillow, whose pixels equal "
             "`tf.image.decode_jpeg(..., dct_method=\"INTEGER_ACCURATE\")`'s; the original code's "
             "`tf.image.decode_jpeg` uses TensorFlow's default, faster DCT, whose pixels differ by "
             "a few of 255 levels (training and test are decoded alike here). "
             "Accuracy in % on 600 fixed tasks of "
             "the 20 meta-test classes (`--eval_seed`), K query images per class (the original code's "
             "test tasks: K support and K query images per class; training and meta-validation use "
             "15), mean ± 95% CI, after "
             f"the paper's {TEST_STEPS} test-time steps.", "", *table(rows), "",
             "![meta-validation accuracy](miniimagenet_val.png)", "",
             "Meta-validation accuracy during training (600 fixed tasks of the 16 validation classes, "
             "every 2,000 iterations) is in `miniimagenet_val.png`; all numbers are in "
             "`miniimagenet.json`. Seconds per meta-iteration: [miniimagenet_speed.md]"
             "(miniimagenet_speed.md) and [performance.md](performance.md).", ""]
    return "\n".join(lines + tail(commands, notes))


def main():
    report_main(__doc__, "miniimagenet", collect, markdown, "MiniImageNet MAML (dotted: the paper's test accuracy)")


if __name__ == "__main__":
    main()
