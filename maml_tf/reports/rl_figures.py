"""The paper's Figure 4 for 2D navigation (return vs gradient steps, trajectories) and the validation curves, from loaded runs."""

import numpy as np

LABELS = {"maml": "MAML", "pretrained": "pretrained", "random": "random init"}
COLORS = {"maml": "tab:blue", "pretrained": "tab:orange", "random": "tab:gray"}
EXTRA_COLORS = ["tab:green", "tab:purple", "tab:cyan", "tab:olive"]


def label(name: str) -> str:
    return LABELS.get(name, name)


def color(name: str, runs: dict) -> str:
    extra = [n for n in runs if n not in COLORS]
    return COLORS.get(name) or EXTRA_COLORS[extra.index(name) % len(EXTRA_COLORS)]


def figure_returns(runs: dict, path: str, floor: float = -100.0):
    """Figure 4 left: average return (± 95% CI over goals) after 0..3 policy-gradient steps.

    Means below `floor` (a diverged step) are drawn at the floor and labelled with their value.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4))
    for name, run in runs.items():
        r = run["eval"]
        mean = np.asarray(r["return"]["mean"])
        shown = np.maximum(mean, floor)
        ax.errorbar(r["steps"], shown, yerr=np.where(mean < floor, 0, r["return"]["ci95"]),
                    marker="o", capsize=3, color=color(name, runs),
                    label=f"{label(name)} (iter {r['iteration']})")
        for step, m in zip(r["steps"], mean):
            if m < floor:
                ax.annotate(f"mean {m:.0f}, off scale", (step, floor), textcoords="offset points",
                            xytext=(5, 5), fontsize=7, color=color(name, runs))
    ax.set_ylim(bottom=floor - 5)
    ax.set_xlabel("number of gradient steps")
    ax.set_ylabel("average return")
    ax.set_xticks(runs[next(iter(runs))]["eval"]["steps"])
    ax.set_title(f"2D navigation, {r['num_tasks']} new goals")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def figure_trajectories(runs: dict, path: str, shown, goals: int = 3, steps=(0, 1, 3)):
    """Figure 4 right: the policy's noise-free path before adaptation and after 1 and 3 steps, per goal."""
    import matplotlib.pyplot as plt

    shown = [n for n in shown if n in runs]
    goals = min([goals] + [len(runs[n]["trajectories"]["goals"]) for n in shown])  # a 2-goal evaluation
    fig, axes = plt.subplots(len(shown), goals, figsize=(3.2 * goals, 3.2 * len(shown)),
                             squeeze=False)
    for row, name in enumerate(shown):
        traj = runs[name]["trajectories"]
        for col in range(goals):
            ax = axes[row][col]
            for step, style in zip(steps, (":", "--", "-")):
                if step < len(traj["positions"]):
                    p = traj["positions"][step, col]
                    ax.plot(p[:, 0], p[:, 1], style,
                            label=f"{step} step{'s' * (step > 1)}" if step else "pre-update")
            ax.plot(*traj["goals"][col], "r*", markersize=12, label="goal")
            ax.plot(0, 0, "ko", markersize=4)
            ax.set_xlim(-0.6, 0.6)
            ax.set_ylim(-0.6, 0.6)
            ax.set_aspect("equal")
            ax.set_title(f"goal {col + 1}", fontsize=9)
        axes[row][0].set_ylabel(label(name), fontsize=9)
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def figure_training(runs: dict, path: str):
    """Validation return before and after one step during training (fixed validation goals)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    plotted = set()
    for name, run in runs.items():
        rows = run["validation"]
        if rows and run["dir"] not in plotted:  # one curve per run directory
            plotted.add(run["dir"])
            it = [r["iteration"] for r in rows]
            ax.plot(it, [r["return"][0] for r in rows], ":", color=color(name, runs),
                    label=f"{label(name)}, before")
            ax.plot(it, [r["return"][1] for r in rows], "-", color=color(name, runs),
                    label=f"{label(name)}, after 1 step")
    ax.set_xlabel("training iteration")
    ax.set_ylabel("validation return")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
