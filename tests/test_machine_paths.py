"""Nothing in the tests or the documents depends on one machine's folders: the tests find the data through $MAML_TF_DATA_DIR only, and every command results/ and the README quote runs from a clone (paths relative to it, programs in it)."""

import glob
import importlib.util
import os
import re

import miniimagenet_helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Folders of one machine (written in two pieces so that this file does not match itself), and the
# pause wrapper that lived outside the repository.
MACHINE = re.compile("|".join(["/" + "work/", "/" + "root/", "/" + "home/", "quiet" + r"\.sh"]))


def documents():
    return sorted(glob.glob(os.path.join(ROOT, "results", "*.md"))
                  + glob.glob(os.path.join(ROOT, "results", "runs", "*_notes.md"))
                  + [os.path.join(ROOT, "README.md")])


def hits(paths):
    found = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if MACHINE.search(line):
                    found.append(f"{os.path.relpath(path, ROOT)}:{number}: {line.strip()[:120]}")
    return found


def test_no_machine_folder_in_the_tests():
    sources = glob.glob(os.path.join(ROOT, "tests", "**", "*.py"), recursive=True)
    sources += glob.glob(os.path.join(ROOT, "tests", "**", "*.sh"), recursive=True)
    assert hits(sources) == []


def test_no_machine_folder_in_results_or_the_readme():
    assert hits(documents()) == []


def test_no_machine_folder_in_the_reports_json():
    """The reports' JSON (not the runs' own config) names runs as results/runs/... or $LOGDIR/..."""
    assert hits(sorted(glob.glob(os.path.join(ROOT, "results", "*.json")))) == []


def test_every_quoted_module_is_in_the_repository():
    """`python -m maml_tf.X` in a document names a module of this repository (the pause wrapper too)."""
    missing = set()
    for path in documents():
        with open(path, encoding="utf-8") as f:
            for module in re.findall(r"-m (maml_tf(?:\.\w+)*)", f.read()):
                if importlib.util.find_spec(module) is None:
                    missing.add(f"{os.path.relpath(path, ROOT)}: {module}")
    assert sorted(missing) == []


def test_the_real_split_csvs_come_from_the_environment_variable_only(monkeypatch, tmp_path):
    """Without $MAML_TF_DATA_DIR the helpers write synthetic classes, wherever the data may lie."""
    monkeypatch.delenv("MAML_TF_DATA_DIR", raising=False)
    miniimagenet_helpers.real_csv_rows.cache_clear()
    try:
        rows = miniimagenet_helpers.real_csv_rows("val")
        assert rows[0] == ("n0200000000000001.jpg", "n02000000")  # the synthetic rows' form
        os.makedirs(tmp_path / "miniimagenet")
        miniimagenet_helpers.write_csv(str(tmp_path / "miniimagenet"), "val", [("a.jpg", "n1"), ("b.jpg", "n1")])
        monkeypatch.setenv("MAML_TF_DATA_DIR", str(tmp_path))
        miniimagenet_helpers.real_csv_rows.cache_clear()
        assert miniimagenet_helpers.real_csv_rows("val") == [("a.jpg", "n1"), ("b.jpg", "n1")]
    finally:
        miniimagenet_helpers.real_csv_rows.cache_clear()



def test_each_report_quotes_its_notes_as_they_are():
    """results/<name>.md is built from results/runs/<name>_notes.md: a fix made in the notes is the
    committed report's text too, so regenerating the report gives it."""
    for notes_path in glob.glob(os.path.join(ROOT, "results", "runs", "*_notes.md")):
        name = os.path.basename(notes_path)[:-len("_notes.md")]
        with open(notes_path, encoding="utf-8") as f, \
                open(os.path.join(ROOT, "results", f"{name}.md"), encoding="utf-8") as g:
            assert f.read().strip() in g.read(), name
