"""Damage a stopped toy run's directory (its checkpoint index, its config.json, its disk), resume it, and check nothing was lost or silently changed.

Used by `python -m maml_tf.bench.faults --damage`: each case trains a toy sinusoid run halfway,
damages it, runs the same command to the end and compares the final state bit for bit with an
uninterrupted run's (as the kills do).
"""

import os
import shutil
import subprocess

from maml_tf.bench import toyrun as faults

INDEX = "checkpoints/checkpoint"


def _rewrite(path: str, change):
    with open(path, encoding="latin-1") as f:
        text = f.read()
    with open(path, "w", encoding="latin-1") as f:
        f.write(change(text))


def _remove(path: str):
    os.remove(path)


# name: (file in the run directory, what is done to it)
CASES = {
    "index: text garbage": (INDEX, lambda p: _rewrite(p, lambda t: "not an index\n")),
    "index: a line cut in half": (INDEX, lambda p: _rewrite(p, lambda t: t[:t.index("all_model") + 12])),
    "index: only its first line": (INDEX, lambda p: _rewrite(p, lambda t: t.splitlines()[0] + "\n")),
    "index: empty": (INDEX, lambda p: _rewrite(p, lambda t: "")),
    "index: binary": (INDEX, lambda p: _rewrite(p, lambda t: "\x00\xff\xfe\x81")),
    "index: deleted": (INDEX, _remove),
    "config.json: []": ("config.json", lambda p: _rewrite(p, lambda t: "[]")),
    "config.json: {}": ("config.json", lambda p: _rewrite(p, lambda t: "{}")),
    "config.json: cut in half": ("config.json", lambda p: _rewrite(p, lambda t: t[:len(t) // 2])),
    "config.json: deleted": ("config.json", _remove),
}


def _run(flags) -> subprocess.CompletedProcess:
    """The run, to its end or its refusal (no exception: a refusal is a result here)."""
    proc = faults.start(flags)
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _result(name, proc, run_dir, expected, resumed_from=None) -> dict:
    own = [line for line in proc.stderr.splitlines() if line.startswith(("warning:", "error:"))]
    return {"case": name, "returncode": proc.returncode, "said": own[0] if own else "",
            "resumed_from": resumed_from if resumed_from is not None else _resumed(proc.stdout),
            "identical": proc.returncode == 0 and faults.same(faults.final_state(run_dir), expected)}


def _resumed(stdout: str) -> int:
    for line in stdout.splitlines():
        if line.startswith("resuming ") and " from iteration " in line:
            return int(line.rsplit(" ", 1)[1])
    return 0


def file_case(root: str, name: str, iterations: int, interval: int, expected) -> dict:
    """Half the run, the damage, then the same command to the end."""
    logdir = os.path.join(root, name.replace(" ", "_").replace(":", ""))
    faults.run_to_end(faults.toy_flags(logdir, iterations // 2, interval))
    path, damage = CASES[name]
    damage(os.path.join(logdir, "toy", path))
    proc = _run(faults.toy_flags(logdir, iterations, interval))
    return _result(name, proc, os.path.join(logdir, "toy"), expected)


def fill(directory: str):
    """Writes `directory/filler` until the disk is full."""
    with open(os.path.join(directory, "filler"), "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def disk_case(root: str, iterations: int, interval: int, expected) -> dict:
    """Half the run on a 4 MB tmpfs, the disk filled, a resume (refused in one line), space
    freed, a resume to the end. Root only (mount); None elsewhere."""
    disk = os.path.join(root, "disk")
    os.makedirs(disk)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", disk],
                      capture_output=True).returncode:
        return None
    try:
        flags = faults.toy_flags(disk, iterations, interval)
        faults.run_to_end(faults.toy_flags(disk, iterations // 2, interval))
        fill(disk)
        full = _run(flags)
        os.remove(os.path.join(disk, "filler"))
        proc = _run(flags)
        row = _result("disk full at resume, then freed", proc, os.path.join(disk, "toy"), expected)
        row["said"] = faults.last_line(full.stderr)
        row["full_returncode"] = full.returncode
        return row
    finally:
        subprocess.run(["umount", "-l", disk], capture_output=True)
        shutil.rmtree(disk, ignore_errors=True)


def campaign(root: str, iterations: int, interval: int, log=print) -> list:
    faults.run_to_end(faults.toy_flags(os.path.join(root, "reference"), iterations, interval))
    expected = faults.final_state(os.path.join(root, "reference", "toy"))
    rows = []
    for name in CASES:
        rows.append(file_case(root, name, iterations, interval, expected))
        log(f"{name}: exit {rows[-1]['returncode']}, resumed from {rows[-1]['resumed_from']}, "
            f"identical {rows[-1]['identical']}")
    disk = disk_case(root, iterations, interval, expected)
    if disk:
        rows.append(disk)
        log(f"disk: {disk['said']}; then identical {disk['identical']}")
    return rows


def report(rows: list, iterations: int) -> list:
    """The damage section of results/reliability.md."""
    lines = ["", "## Damage to a stopped run's directory", "",
             f"Each case trains the toy run to iteration {iterations // 2}, damages one file (or "
             f"fills the disk), runs the same command to {iterations} and compares the final "
             "state with the uninterrupted run's. 'said' is maml_tf's first warning or error line.",
             "", f"- cases ending identical to the uninterrupted run: "
             f"{sum(r['identical'] for r in rows)} of {len(rows)}", "",
             "| damage | exit code | resumed from | ends identical | said |", "|---|---|---|---|---|"]
    for r in rows:
        code = (f"{r['full_returncode']} (full), then {r['returncode']}" if "full_returncode" in r
                else str(r["returncode"]))
        said = r["said"][:160].replace("|", "/")
        lines.append(f"| {r['case']} | {code} | {r['resumed_from']} | {r['identical']} | {said} |")
    return lines
