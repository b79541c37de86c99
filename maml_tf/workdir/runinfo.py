"""What a run directory records about where and how long it ran: each training segment's wall time and hardware."""

import os
import platform
import subprocess
import time

import maml_tf
from maml_tf.workdir.rundir import read_json, warn, write_json


def hardware() -> dict:
    """CPU model, core count, memory and accelerators of this machine."""
    import tensorflow as tf

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
        with open("/proc/meminfo") as f:
            mem_gib = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        mem_gib = None
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem_gib,
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
            "tensorflow": tf.__version__, "python": platform.python_version()}


def code_version() -> str:
    """maml_tf's version, plus the git commit (and '+dirty') when it runs from a checkout."""
    here = os.path.dirname(os.path.abspath(maml_tf.__file__))
    try:
        commit = subprocess.run(["git", "-C", here, "describe", "--always", "--dirty=+dirty"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return maml_tf.__version__ + (f" ({commit})" if commit else "")


class SegmentLog:
    """Appends one record per training segment (a start or a resume) to `workdir/runinfo.json`,
    rewritten (atomically) at every checkpoint so a killed run still accounts for the time it
    ran; each segment records its settings, which may differ in speed and bookkeeping only."""

    def __init__(self, workdir: str, start_iteration: int, settings: dict = None):
        self.path = os.path.join(workdir, "runinfo.json")
        self.info = _read(self.path)
        # A segment beyond the restored checkpoint was lost with the kill: keep what counts.
        self.info["segments"] = [s for s in self.info["segments"]
                                 if s["end_iteration"] <= start_iteration]
        self.segment = {"start_iteration": start_iteration, "end_iteration": start_iteration,
                        "wall_seconds": 0.0, "started": time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                                                      time.gmtime()),
                        "code": code_version(), "hardware": hardware()}
        if settings is not None:
            self.segment["settings"] = settings
        self.info["segments"].append(self.segment)
        self.t0, self.load_samples = time.time(), []

    def update(self, iteration: int):
        self.segment["end_iteration"] = iteration
        self.segment["wall_seconds"] = round(time.time() - self.t0, 1)
        # Other processes' load explains a slow segment: keep the mean 1-minute load average.
        self.load_samples.append(os.getloadavg()[0])
        self.segment["mean_loadavg"] = round(sum(self.load_samples) / len(self.load_samples), 2)
        self.info["iterations"] = iteration
        self.info["wall_seconds"] = round(sum(s["wall_seconds"] for s in self.info["segments"]), 1)
        write_json(self.path, self.info, indent=2)


def _read(path: str) -> dict:
    """runinfo.json's record; a new one if it is missing, or unreadable or of another shape (a
    hand edit, another program's file): its history is lost, with a warning, as a torn file's."""
    info = read_json(path, then="it will be rewritten")
    if info is None:
        return {"segments": []}
    segments = info.get("segments", []) if isinstance(info, dict) else None
    if isinstance(segments, list) and all(_is_segment(s) for s in segments):
        return {**info, "segments": segments}
    warn(f"{path} holds no list of training segments; it will be rewritten", once=True)
    return {"segments": []}


def _is_segment(segment) -> bool:
    """Whether `segment` has what is read back: its iteration span and its wall time."""
    return (isinstance(segment, dict) and
            all(_is_number(segment.get(k)) for k in ("start_iteration", "end_iteration",
                                                     "wall_seconds")))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
