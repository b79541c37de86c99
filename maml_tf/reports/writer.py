"""What every report shares: the machine it describes, training time from TensorBoard events, and writing `name.md` + `name.json`."""

import glob
import json
import os
import platform
from typing import Dict, List, Optional


def trained_on(rows: List[Dict]) -> List[str]:
    """'2-core AMD EPYC'... : the machines the rows' runs trained on, from every segment of their
    runinfo.json (a run may have moved between machines), in the order first seen."""
    seen = []
    for row in rows:
        path = os.path.join(row.get("run_dir") or "", "runinfo.json")
        try:
            with open(path) as f:
                segments = json.load(f).get("segments", [])
        except (OSError, ValueError, AttributeError):
            continue
        for segment in segments:
            hw = segment.get("hardware") or {} if isinstance(segment, dict) else {}
            name = f"{hw.get('cores', '?')}-core {hw.get('cpu', 'unknown CPU')}"
            if hw and name not in seen:
                seen.append(name)
    return seen


def hardware(rows: Optional[List[Dict]] = None) -> str:
    """The machines the rows' runs trained on (their own records); without runs, this machine
    in one line: cores, CPU model, memory."""
    machines = trained_on(rows or [])
    if machines:
        return (f"the runs trained on {', '.join(machines)} (as their runinfo.json records each "
                "training segment), no GPU (TensorFlow CPU)")
    return this_machine()


def this_machine() -> str:
    """This machine in one line: cores, CPU model, memory."""
    cpu = platform.processor() or "CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory = float("nan")
    return f"{os.cpu_count()} cores of {cpu}, {memory:.0f} GiB RAM, no GPU (TensorFlow CPU)"


def wall_time_hours(run_dir: str, until: int) -> Optional[float]:
    """Training time up to iteration `until`, summed over the run's TensorBoard event files (one
    per start or resume); the run may still be going."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    total = 0.0
    for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        events = [event_pb2.Event.FromString(raw.numpy()) for raw in tf.data.TFRecordDataset(path)]
        times = [e.wall_time for e in events if e.step <= until]
        if len(times) > 1:
            total += max(times) - min(times)
    return total / 3600 if total else None


def portable(value, root: str = "", logdir: str = ""):
    """`value` with every absolute path in it written without this machine's folders: relative
    to `root` (the checkout: results/runs/...) or as $LOGDIR/... (default: the environment's)."""
    root = os.path.abspath(root or os.getcwd()) + os.sep
    logdir = logdir or os.environ.get("LOGDIR", "")
    if isinstance(value, dict):
        return {k: portable(v, root, logdir) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, root, logdir) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        if value.startswith(root):
            return os.path.relpath(value, root)
        if logdir and value.startswith(os.path.abspath(logdir) + os.sep):
            return "$LOGDIR/" + os.path.relpath(value, logdir)
    return value


def out_dir(path: str) -> str:
    """`path`, made a folder for a report's files; one error line (SystemExit) if it cannot be."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise SystemExit(f"error: --out={path} cannot be a folder for the report ({err.strerror})") from None
    return path


def write_report(out: str, name: str, text: str, rows: List[Dict], also_ran_on: Optional[str] = None):
    """`out/name.md` and `out/name.json` (the rows and the hardware they ran on, with
    `also_ran_on` for rows whose runs are not here; paths without this machine's folders,
    `portable`)."""
    with open(os.path.join(out, f"{name}.md"), "w") as f:
        f.write(text)
    machines = hardware(rows) if not also_ran_on or trained_on(rows) else also_ran_on
    if also_ran_on and machines != also_ran_on:
        machines += f"; rows recorded earlier: {also_ran_on}"
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump({"hardware": machines, "rows": portable(rows)}, f, indent=1)
    print(f"wrote {out}/{name}.md, {name}.json", flush=True)
