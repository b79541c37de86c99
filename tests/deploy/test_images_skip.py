"""Stray files in the image folders (notes.txt, .DS_Store) are skipped with one line on stderr, not fatal."""

import pytest

from maml_tf import classify
from maml_tf.deploy import images
from maml_tf.errors import UserError
from test_export_and_classify import toy_run, write_folders


def add_strays(root):
    (root / "support" / "alpha" / "notes.txt").write_text("drawn on Monday")
    (root / "support" / "beta" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "query" / "notes.txt").write_text("to classify")
    (root / "query" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")


def test_folders_skip_hidden_and_non_image_files_and_say_so(tmp_path, capsys):
    write_folders(tmp_path)
    add_strays(tmp_path)
    (tmp_path / "query" / "q3").write_bytes((tmp_path / "query" / "q0.png").read_bytes())  # no extension
    x, y, classes = images.support_folder(str(tmp_path / "support"), 4, "omniglot")
    q, files = images.query_folder(str(tmp_path / "query"), "omniglot")
    assert classes == ["alpha", "beta", "gamma"] and list(y) == [0, 0, 1, 1, 2, 2] and x.shape[0] == 6
    assert files == ["q0.png", "q1.png", "q2.png", "q3"] and q.shape[0] == 4
    assert capsys.readouterr().err.splitlines() == [
        f"skipped 2 files that are not images in {tmp_path}/support: alpha/notes.txt, beta/.DS_Store",
        f"skipped 2 files that are not images in {tmp_path}/query: .DS_Store, notes.txt"]


def test_a_file_named_as_an_image_that_is_none_is_still_an_error(tmp_path):
    write_folders(tmp_path)
    (tmp_path / "query" / "broken.jpg").write_text("not a jpeg")
    with pytest.raises(UserError, match="cannot read image .*broken.jpg"):
        images.query_folder(str(tmp_path / "query"), "omniglot")


def test_classify_runs_past_stray_files(tmp_path, capsys):
    run = toy_run(tmp_path / "run")
    write_folders(tmp_path)
    add_strays(tmp_path)
    classify.main(["--model", run, "--support", str(tmp_path / "support"),
                   "--query", str(tmp_path / "query"), "--out", str(tmp_path / "pred.csv")])
    out, err = capsys.readouterr()
    assert [r.split(",")[0] for r in out.splitlines()] == ["file", "q0.png", "q1.png", "q2.png"]
    assert "skipped 2 files that are not images" in err and "error" not in err


def test_an_image_given_where_a_folder_is_expected_is_named_as_such(tmp_path):
    write_folders(tmp_path)
    image = next((tmp_path / "query").iterdir())
    with pytest.raises(UserError, match=r"query folder .* is a file, not a folder: give the folder"):
        images.query_folder(str(image), "omniglot")
    with pytest.raises(UserError, match="support folder .* is a file, not a folder"):
        images.support_folder(str(image), 3, "omniglot")
