"""Which inner steps an evaluation records, and reading a result at a step when not every step is there."""

from typing import Dict, List, Sequence

from maml_tf.errors import UserError

# The paper's MiniImageNet and Omniglot tables report each of their <= 10 test steps; a longer
# curve (Reptile's 50 steps) is read at every 10th step, the steps print_summary shows.
EVERY_STEP_UP_TO, STRIDE = 10, 10


def eval_steps(steps: int, spec: str = "auto") -> List[int]:
    """The steps a test evaluation of `steps` inner steps records, in increasing order.

    `spec` "auto": every step when steps <= 10, else 0, every 10th and the last; "all": every
    step; else comma-separated steps in 0..steps ("0,5,50"). UserError for anything else.
    """
    if spec == "all" or (spec == "auto" and steps <= EVERY_STEP_UP_TO):
        return list(range(steps + 1))
    if spec == "auto":
        return sorted(set(range(0, steps + 1, STRIDE)) | {steps})
    try:
        chosen = sorted({int(s) for s in spec.split(",")})
    except ValueError:
        raise UserError(f"record_steps must be auto, all or steps like 0,5,50, got {spec!r}") from None
    if chosen[0] < 0 or chosen[-1] > steps:
        raise UserError(f"record_steps must lie in 0..{steps} (the evaluation's inner steps), "
                        f"got {spec!r}")
    return chosen


def validation_steps(steps: int, post: int) -> List[int]:
    """What meta-validation reads: step 0 and `post` (logged) and the last (model selection)."""
    return sorted({0, post, steps})


def steps_of(result: Dict, length: int) -> List[int]:
    """The steps a result's arrays of `length` values are at: its "steps"; 0..length-1 when it
    has none (validation rows written before validation recorded only some steps)."""
    return list(result.get("steps") or range(length))


def at_step(values: Sequence, steps: Sequence[int], step: int):
    """The value at inner step `step` (not position), or at the last recorded step before it
    (the first recorded one if none is): a sparse record is never read at the wrong step."""
    return values[list(steps).index(nearest(steps, step))]


def nearest(steps: Sequence[int], step: int) -> int:
    """`step` if recorded, else the largest recorded step below it (else the smallest)."""
    below = [s for s in steps if s <= step]
    return max(below) if below else min(steps)
