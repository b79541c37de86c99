"""results/maml_family.{md,json}: MAML and its successors (ANIL, Meta-SGD, MAML++'s parts) on Omniglot 20-way 1-shot, each the paper's command plus one flag, the same iterations, the same 600 test tasks.

    python -m maml_tf.reports.maml_family --out results --logdir DIR [--logdir DIR ...] [--commands TEXT]

Numbers are read from the runs' own files, live or kept in results/runs; nothing is typed in but
the published numbers, each with where it was read (issue 41).
"""

from typing import Dict, List

from maml_tf.reports.runs import paper_row, report_main, table, tail
from maml_tf.reports.writer import hardware

ITERATIONS = 5000
BASE = "omniglot.20way1shot.maml.mbs16.steps5.lr0.1.conv64"
FULL = 50000  # MAML++'s released 20-way 1-shot config: 100 epochs of 500 iterations
# (row, run directory as `run_id.run_name` builds it, published 20-way 1-shot accuracy, its
# source, the iterations it trains)
SETTINGS = [
    ("MAML", BASE, {"mean": 95.8, "ci95": 0.3}, "finn", ITERATIONS),
    ("ANIL (--anil)", BASE + ".anil", "96.2 ± 0.5 (std)", "raghu", ITERATIONS),
    ("Meta-SGD (--learned_inner_lr=per_param)", BASE + ".metasgd", "95.93 ± 0.38", "metasgd",
     ITERATIONS),
    ("LSLR (--learned_inner_lr=per_layer_step)", BASE + ".lslr", "95.77 ± 0.38 (std)", "mamlpp",
     ITERATIONS),
    ("multi-step loss (--multi_step_loss)", BASE + ".msl5000", "91.53 ± 0.69 (std)", "mamlpp",
     ITERATIONS),
    ("MAML++ (--maml_plus_plus)", BASE + ".lslr.msl5000.cos1e-05.bnwb", "97.65 ± 0.05 (std)",
     "mamlpp", ITERATIONS),
    ("MAML++ at full length, its own settings", "omniglot.20way1shot.maml.mbs8.steps5.lr0.005"
     ".conv64.maxpool.lslr.msl5000.cos1e-05.bnwb", "97.65 ± 0.05 (std)", "mamlpp", FULL),
]
# Where each published number was read: none of the three successor papers' own text could be
# opened from this machine, so each says through what it was read.
SOURCES = {
    "finn": "Finn, Abbeel, Levine 2017, Table 1 (± = 95% confidence interval).",
    "raghu": "Raghu, Raghu, Bengio, Vinyals, ICLR 2020 (arXiv 1909.09157), Table 2, row ANIL; read "
             "in learn2learn's ANIL tutorial (docs/tutorials/anil_tutorial/ANIL_tutorial.md, commit "
             "db5cee3), which quotes the table; ± = standard deviation over three seeds (the "
             "paper's Section 4, as results/omniglot.md quotes it for the MAML row).",
    "metasgd": "Li, Zhou, Chen, Li 2017 (arXiv 1707.09835), as the MAML++ paper's Table 1 quotes it "
               "(read in its first author's post, below); its ± is not defined there. maml_tf starts "
               "every learned rate at --update_lr, as learn2learn's MetaSGD starts its at its `lr` "
               "(learn2learn/algorithms/meta_sgd.py, commit db5cee3); the Meta-SGD paper's own "
               "initialisation was not read here.",
    "mamlpp": "Antoniou, Edwards, Storkey, ICLR 2019 (arXiv 1810.09502), Table 1 with its ablation "
              "rows (MAML + LSLR, MAML + MSL, MAML++), read in the first author's post 'How to train "
              "your MAML: A step by step approach' (bayeswatch.com, 2018-11-30; source "
              "amosstorkey/MLSystemsCDT.github.io, _posts/2018-11-30-HTYM.md, commit 7c6e6d5); ± = "
              "standard deviation over 3 seeds (the author, HowToTrainYourMAMLPytorch issue #20), "
              "each seed tested as an ensemble of its 5 best-validation checkpoints on 600 tasks "
              "(its experiment_builder.py, commit 8696470; issue #7). The post may be an earlier "
              "version of the paper: it gives MiniImageNet 52.40 / 67.15, where the ICLR version is "
              "quoted elsewhere as 52.15 / 68.32.",
}
TEST_STEPS = 5  # the paper's 20-way test steps


def collect(logdirs: List[str]) -> List[Dict]:
    return [{"setting": name, "paper": paper, "paper_source": SOURCES[source],
             "paper_steps": TEST_STEPS, **paper_row(logdirs, run, 1, TEST_STEPS, iterations)}
            for name, run, paper, source, iterations in SETTINGS]


def markdown(rows: List[Dict], commands: str, notes: str = "") -> str:
    lines = ["# MAML and its successors, Omniglot 20-way 1-shot (issue 41)", "",
             f"Hardware: {hardware(rows)}. Each row is the MAML paper's 20-way 1-shot command "
             f"with one flag, trained {ITERATIONS:,} iterations (the published runs trained "
             f"longer), and MAML++ with its own released settings for {FULL:,} (8 tasks, max "
             "pooling: the run_experiments.sh lines below); each tested on the same 600 tasks of the 423 meta-test characters after 5 "
             "steps: accuracy in %, mean ± 95% CI. The 'paper' column is the variant's own "
             "published number, trained longer and, for MAML++'s rows, tested as an ensemble of "
             "5 checkpoints; its ± is not always a 95% CI (see below).", "", *table(rows), "",
             "Published numbers, where each was read:", "",
             *[f"- {r['setting']}: {r['paper_source']}" for r in rows], ""]
    return "\n".join(lines + tail(commands, notes))


def main():
    report_main(__doc__, "maml_family", collect, markdown,
                "Omniglot 20-way 1-shot, MAML and its successors (dotted: published)")


if __name__ == "__main__":
    main()
