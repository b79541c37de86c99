"""The README's "Use a meta-learned model" blocks, run as written and in order (one shell, from a clone's root, the shipped models, the real Omniglot): each prints what the README shows after it.

A code block (```bash or ```python) may be followed, after some prose, by a plain ``` block: what
it prints. Those lines must appear in its standard output in that order; a line `...` stands for
lines left out, a line ending in `...` for any line that begins with the rest, and decimal numbers
agree to 1e-4 (the last digits of a probability vary between CPUs; the README says on which CPU
it printed). `.venv/bin/python` is the venv of the README's first command: here a wrapper of the
Python running the tests; a bare `python` or `python3` fails. Skipped without the Omniglot zips
in `$MAML_TF_DATA_DIR/omniglot/`.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from omniglot_helpers import ZIP_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
SECTION = "## Use a meta-learned model"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.S | re.M)
DECIMAL = re.compile(r"-?\d+\.\d+")
MARKER = "@@README block {}@@"


def section(text: str, title: str = SECTION) -> str:
    start = text.index(title + "\n")
    end = text.find("\n## ", start + len(title))
    return text[start:] if end < 0 else text[start:end]


def runs(text: str):
    """[{"lang", "code", "expected"}] of the section's code blocks, in order; `expected` is the
    output block that follows a code block (None if there is none)."""
    found = []
    for match in FENCE.finditer(section(text)):
        lang, body = match.group(1), match.group(2)
        if lang in ("bash", "python"):
            found.append({"lang": lang, "code": body, "expected": None})
        elif lang == "" and found and found[-1]["expected"] is None:
            found[-1]["expected"] = body.splitlines()
        else:
            raise AssertionError(f"unexpected block ```{lang} in {SECTION!r}:\n{body}")
    return found


def same_line(expected: str, actual: str) -> bool:
    expected, actual = expected.rstrip(), actual.rstrip()
    if expected.endswith("...") and expected != "...":
        expected, actual = expected[:-3], actual[:len(expected) - 3]
    if DECIMAL.split(expected) != DECIMAL.split(actual):
        return False
    return all(abs(float(a) - float(b)) <= 1e-4
               for a, b in zip(DECIMAL.findall(expected), DECIMAL.findall(actual)))


def missing_lines(expected, actual):
    """The expected lines not found, in order, in `actual` (empty if all are)."""
    lines, at = [line for line in actual if line.strip()], 0
    for want in expected:
        if want.strip() in ("", "..."):
            continue
        while at < len(lines) and not same_line(want, lines[at]):
            at += 1
        if at == len(lines):
            return [want]
        at += 1
    return []


def test_same_line_and_order():
    assert same_line("1030_03.png,atlantean05,0.939315", "1030_03.png,atlantean05,0.939314")
    assert not same_line("1030_03.png,atlantean05,0.939315", "1030_03.png,atlantean05,0.93")
    assert not same_line("1030_03.png,atlantean05,0.939315", "1030_03.png,atlantean15,0.939315")
    assert not same_line("1015_02.png,a,0.5", "1016_02.png,a,0.5")  # integers exactly
    assert same_line("wrote served: signature ...", "wrote served: signature f(x), 1.2 MB")
    assert missing_lines(["a", "...", "c"], ["a", "b", "", "c"]) == []
    assert missing_lines(["c", "a"], ["a", "b", "c"]) == ["a"]


def test_the_section_is_well_formed():
    found = runs(open(README, encoding="utf-8").read())
    assert len(found) >= 5 and sum(r["expected"] is not None for r in found) >= 2
    for r in found:
        for line in r["code"].splitlines():  # a block run again must not stop at unzip's prompt
            if re.match(r"\s*unzip\s", line):
                flags = "".join(re.findall(r"\s-([a-zA-Z]+)", line))
                assert "o" in flags or "n" in flags, f"unzip without -o or -n: {line.strip()}"


def shell_script(found, folder: str) -> str:
    """One bash script running the blocks in order, a marker line before each."""
    parts = ["set -e"]
    for i, r in enumerate(found):
        parts.append(f"echo; echo '{MARKER.format(i)}'; echo '{MARKER.format(i)}' >&2")
        if r["lang"] == "bash":
            parts.append(r["code"])
        else:
            path = os.path.join(folder, f"readme_block_{i}.py")
            with open(path, "w") as f:
                f.write(r["code"])
            parts.append(f".venv/bin/python {shlex.quote(path)}")
    return "\n".join(parts) + "\n"


def split_output(text: str, count: int):
    pieces = re.split(r"^@@README block (\d+)@@$", text, flags=re.M)
    out = {int(pieces[i]): pieces[i + 1].splitlines() for i in range(1, len(pieces) - 1, 2)}
    return [out.get(i) for i in range(count)]


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isfile(os.path.join(ZIP_DIR, "images_evaluation.zip"))
                    or not os.path.isfile(os.path.join(ZIP_DIR, "images_background.zip")),
                    reason="real Omniglot zips not found under $MAML_TF_DATA_DIR/omniglot")
@pytest.mark.skipif(shutil.which("unzip") is None, reason="no unzip command")
def test_use_a_meta_learned_model_blocks_print_what_the_readme_shows(tmp_path, cache_dir):
    found = runs(open(README, encoding="utf-8").read())
    clone = tmp_path / "clone"  # what the blocks read of a clone: the shipped runs
    shutil.copytree(os.path.join(ROOT, "results", "runs"), clone / "results" / "runs")
    venv = clone / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} \"$@\"\n")
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("python", "python3"):
        (bare / name).write_text("#!/bin/sh\necho \"a README block ran a bare $0, not .venv/bin/python\" >&2\n"
                                 "exit 127\n")
    for f in [venv / "python", bare / "python", bare / "python3"]:
        f.chmod(0o755)
    script = tmp_path / "blocks.sh"
    script.write_text(shell_script(found, str(tmp_path)))
    env = dict(os.environ, PATH=f"{bare}{os.pathsep}{os.environ.get('PATH', '')}",
               TF_CPP_MIN_LOG_LEVEL="2", MAML_TF_CACHE_DIR=os.environ.get("MAML_TF_CACHE_DIR", cache_dir))
    done = subprocess.run(["bash", str(script)], cwd=clone, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=900)
    outputs = split_output(done.stdout, len(found))
    errors = split_output(done.stderr, len(found))
    for i, r in enumerate(found):
        where = f"README block {i} ({r['lang']}):\n{r['code']}"
        assert outputs[i] is not None, (f"{where}\nwas not reached (exit code {done.returncode}); "
                                        f"stderr of the block before:\n{_tail(errors[i - 1] if i else [])}")
        last = i == len(found) - 1 or outputs[i + 1] is None
        if last:
            assert done.returncode == 0, (f"{where}\nfailed (exit code {done.returncode}):\n"
                                          f"{_tail(errors[i] or [])}")
        if r["expected"] is not None:
            assert missing_lines(r["expected"], outputs[i]) == [], (
                f"{where}\nprinted:\n" + "\n".join(outputs[i]) + "\nnot what the README shows:\n"
                + "\n".join(r["expected"]) + f"\nstderr:\n{_tail(errors[i] or [])}")


def _tail(lines, n=30):
    return "\n".join(lines[-n:])


DURATION = re.compile(r"\b\d+(?:\.\d+)? ?(?:s|ms|minutes?|CPU-seconds)\b")
SETTING = re.compile(r"\b(?:every|after|for) \d+ ?(?:s|ms|minutes?|min)\b")  # intervals, not measurements
CPU = re.compile(r"AMD EPYC|Intel Xeon")


def paragraphs(text: str):
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def unnamed_timings(text: str):
    """The paragraphs quoting a measured time with no CPU named in them or in the paragraph
    before (an output block after the prose that names its machine)."""
    found, before = [], ""
    for p in paragraphs(text):
        if DURATION.search(SETTING.sub("", p)) and not CPU.search(p) and not CPU.search(before):
            found.append(p.strip()[:200])
        before = p
    return found


def test_readme_timings_name_their_machine():
    """Times measured on one machine say which (the README's first ones came from one busy
    2-core AMD EPYC and were read as general; issue 37)."""
    assert unnamed_timings("It took 135 s.\n\nOn a 2-core AMD EPYC:\n\n```\ndone, 135 s\n```") == ["It took 135 s."]
    assert unnamed_timings("Saved every 30 minutes, once quiet for 30 s.") == []
    assert unnamed_timings(open(README, encoding="utf-8").read()) == []
