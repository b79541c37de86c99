"""A process as Linux's /proc/PID/stat describes it: its state letter, parent and start time."""

from typing import List, Optional


def fields(pid: int) -> List[str]:
    """/proc/PID/stat's fields after the command name (state, parent pid, ...; [] if the
    process is gone or there is no /proc). The name is cut at the last ')': it may hold spaces
    and parentheses itself."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def state(pid: int) -> str:
    """One letter: R running, S sleeping, T stopped (t: by a tracer), ... ('' if unknown)."""
    found = fields(pid)
    return found[0] if found else ""


def parent(pid: int) -> int:
    """The parent pid (0 if unknown)."""
    found = fields(pid)
    return int(found[1]) if len(found) > 1 else 0


def start_time(pid: int) -> Optional[str]:
    """The kernel's start time of `pid` (tells a reused pid from the process that had it);
    None if unknown."""
    found = fields(pid)
    return found[19] if len(found) > 19 else None
