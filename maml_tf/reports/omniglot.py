"""results/omniglot.{md,json} and the meta-validation plot, from the run directories of the Table 1 runs.

    python -m maml_tf.reports.omniglot --out results --logdir DIR [--logdir DIR ...] [--commands TEXT]

Numbers are read from the runs' own files (test-set evaluation JSON, validation.jsonl,
runinfo.json), live or kept in results/runs; nothing is typed in except the paper's numbers.
"""

from typing import Dict, List

from maml_tf.reports.runs import paper_row, report_main, table, tail
from maml_tf.reports.writer import hardware

PAPER_ITERATIONS = 60000
# (name, run directory as `run_id.run_name` builds it, K, paper's test steps, paper's accuracy ± CI, %)
SETTINGS = [
    ("5-way 1-shot", "omniglot.5way1shot.maml.mbs32.steps1.lr0.4.conv64", 1, 3, (98.7, 0.4)),
    ("5-way 5-shot", "omniglot.5way5shot.maml.mbs32.steps1.lr0.4.conv64", 5, 3, (99.9, 0.1)),
    ("20-way 1-shot", "omniglot.20way1shot.maml.mbs16.steps5.lr0.1.conv64", 1, 5, (95.8, 0.3)),
    ("20-way 5-shot", "omniglot.20way5shot.maml.mbs16.steps5.lr0.1.conv64", 5, 5, (98.9, 0.2)),
]


def collect(logdirs: List[str]) -> List[Dict]:
    rows = []
    for name, run, shots, steps, paper in SETTINGS:
        row = {"setting": name, "paper": {"mean": paper[0], "ci95": paper[1]}, "paper_steps": steps,
               **paper_row(logdirs, run, shots, steps, PAPER_ITERATIONS)}
        rows.append(row)
    return rows


def markdown(rows: List[Dict], commands: str, notes: str = "") -> str:
    lines = ["# Omniglot (Table 1 of Finn et al. 2017), MAML, meta-test split", "",
             f"Hardware: {hardware(rows)}. Accuracy in % on the 423 meta-test characters (maml_tf's seeded "
             "random split, of the original's sizes: protocol point 1 below), mean ± 95% CI over the evaluated tasks, after the paper's number of "
             "test-time steps (5-way: 3, 20-way: 5).", "", *table(rows), "",
             "![meta-validation accuracy](omniglot_val.png)", "",
             "Meta-validation accuracy during training (100 fixed tasks of the 100 validation "
             "characters) is in `omniglot_val.png`; all numbers are in `omniglot.json`.", ""]
    return "\n".join(lines + tail(commands, notes))


def main():
    report_main(__doc__, "omniglot", collect, markdown, "Omniglot MAML (dotted: the paper's test accuracy)")


if __name__ == "__main__":
    main()
