"""The fault-injection script at toy size: a run killed by SIGKILL and then SIGTERM ends as the uninterrupted run."""

import os
import signal

import pytest

from maml_tf.bench import faults

ITERATIONS, INTERVAL = 20, 5


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """One fault campaign: its uninterrupted 20-iteration run (reference/toy) is also the damage
    case's reference, the same command and flags it used to run on its own."""
    root = str(tmp_path_factory.mktemp("faults"))
    plan = [(signal.SIGKILL, 12), (signal.SIGTERM, 17)]
    result = faults.campaign(root, 2, 2, ITERATIONS, INTERVAL, seed=0, log=lambda m: None, plan=plan)
    return root, result


def test_killed_and_resumed_runs_end_identical(campaign):
    _, result = campaign
    kill, term = result["records"]
    assert kill["returncode"] == -9 and kill["saved"] % 5 == 0 and 0 <= kill["lost"] < 5 + 1
    assert term["returncode"] == 143 and term["lost"] == 0 and term["saved"] >= 17
    assert term["message"].startswith("interrupted: SIGTERM: stopped after iteration")
    assert result["runs"] == [{"run": 0, "identical": True}]


def test_a_damage_case_resumes_to_the_uninterrupted_state(campaign, tmp_path):
    """`faults --damage`: a deleted checkpoint index, then the same command, ends bit-identical."""
    from maml_tf.bench import damage

    expected = faults.final_state(os.path.join(campaign[0], "reference", "toy"))
    row = damage.file_case(str(tmp_path), "index: deleted", ITERATIONS, INTERVAL, expected)
    assert row["returncode"] == 0 and row["resumed_from"] == 10 and row["identical"], row
    assert row["said"].startswith("warning: ") and "rebuilt it" in row["said"]
    assert "| index: deleted | 0 | 10 | True |" in "\n".join(damage.report([row], 20))
