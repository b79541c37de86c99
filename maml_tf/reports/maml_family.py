"""results/maml_family.{md,json}: MAML and its successors (ANIL, Meta-SGD, MAML++'s parts) on Omniglot 20-way 1-shot, each the paper's command plus one flag, the same iterations, the same 600 test tasks.

    python -m maml_tf.reports.maml_family --out results --logdir DIR [--logdir DIR ...] [--commands TEXT]

Numbers are read from the runs' own files, live or kept in results/runs; nothing is typed in but
the published numbers, and only those checked in their source (issue 41).
"""

from typing import Dict, List

from maml_tf.reports.runs import paper_row, report_main, table, tail
from maml_tf.reports.writer import hardware

ITERATIONS = 5000
BASE = "omniglot.20way1shot.maml.mbs16.steps5.lr0.1.conv64"
UNCONFIRMED = "not confirmed here"
# (row, run directory as `config.run_name` builds it, published 20-way 1-shot accuracy)
SETTINGS = [
    ("MAML", BASE, {"mean": 95.8, "ci95": 0.3}),  # Finn et al. 2017, Table 1
    ("ANIL (--anil)", BASE + ".anil", UNCONFIRMED),
    ("Meta-SGD (--learned_inner_lr=per_param)", BASE + ".metasgd", UNCONFIRMED),
    ("LSLR (--learned_inner_lr=per_layer_step)", BASE + ".lslr", UNCONFIRMED),
    ("multi-step loss (--multi_step_loss)", BASE + ".msl5000", UNCONFIRMED),
    # Antoniou et al. 2019, Table 1 (read through Papers with Code; its ± 0.05 not seen here)
    ("MAML++ (--maml_plus_plus)", BASE + ".lslr.msl5000.cos1e-05.bnwb", "97.65"),
]
TEST_STEPS = 5  # the paper's 20-way test steps


def collect(logdirs: List[str]) -> List[Dict]:
    return [{"setting": name, "paper": paper, "paper_steps": TEST_STEPS,
             **paper_row(logdirs, run, 1, TEST_STEPS, ITERATIONS)}
            for name, run, paper in SETTINGS]


def markdown(rows: List[Dict], commands: str, notes: str = "") -> str:
    lines = ["# MAML and its successors, Omniglot 20-way 1-shot (issue 41)", "",
             f"Hardware: {hardware(rows)}. Each row is the MAML paper's 20-way 1-shot command "
             f"with one flag, trained {ITERATIONS:,} iterations (the published runs trained "
             "longer), tested on the same 600 tasks of the 423 meta-test characters after 5 "
             "steps: accuracy in %, mean ± 95% CI. The 'paper' column is the variant's own "
             "published number where it was checked in its source.", "", *table(rows), ""]
    return "\n".join(lines + tail(commands, notes))


def main():
    report_main(__doc__, "maml_family", collect, markdown,
                "Omniglot 20-way 1-shot, MAML and its successors (dotted: published)")


if __name__ == "__main__":
    main()
