"""The fault-injection script at toy size: a run killed by SIGKILL and then SIGTERM ends as the uninterrupted run."""

import signal

from maml_tf.bench import faults


def test_killed_and_resumed_runs_end_identical(tmp_path):
    plan = [(signal.SIGKILL, 12), (signal.SIGTERM, 17)]
    result = faults.campaign(str(tmp_path), 2, 2, 24, 5, seed=0, log=lambda m: None, plan=plan)
    kill, term = result["records"]
    assert kill["returncode"] == -9 and kill["saved"] % 5 == 0 and 0 <= kill["lost"] < 5 + 1
    assert term["returncode"] == 143 and term["lost"] == 0 and term["saved"] >= 17
    assert term["message"].startswith("interrupted: SIGTERM: stopped after iteration")
    assert result["runs"] == [{"run": 0, "identical": True}]


def test_a_damage_case_resumes_to_the_uninterrupted_state(tmp_path):
    """`faults --damage`: a deleted checkpoint index, then the same command, ends bit-identical."""
    from maml_tf.bench import damage, toyrun

    toyrun.run_to_end(toyrun.toy_flags(str(tmp_path / "reference"), 20, 5))
    expected = toyrun.final_state(str(tmp_path / "reference" / "toy"))
    row = damage.file_case(str(tmp_path), "index: deleted", 20, 5, expected)
    assert row["returncode"] == 0 and row["resumed_from"] == 10 and row["identical"], row
    assert row["said"].startswith("warning: ") and "rebuilt it" in row["said"]
    assert "| index: deleted | 0 | 10 | True |" in "\n".join(damage.report([row], 20))
