"""One writer per run directory: a lock file naming its holder (pid, host), taken over when the holder is dead."""

import json
import os
import socket
import threading
import time
from typing import Optional

from maml_tf.errors import UserError
from maml_tf.workdir.procstat import start_time
from maml_tf.workdir.rundir import warn

LOCK_NAME = "lock"
HEARTBEAT_SECONDS = 30  # the holder touches its lock this often, so that another host...
STALE_SECONDS = 600  # ...can tell a lock untouched this long from a live run's


def _me() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "start": start_time(os.getpid()),
            "since": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}


def _is_dead(holder: dict, age: float) -> bool:
    """On this host: whether the holder's process is gone (or its pid reused). On another host,
    where its process cannot be seen (a shared filesystem): whether its heartbeat stopped."""
    if not holder:  # empty or torn: a holder killed while writing it, or one writing it now
        return age > 5
    if holder.get("host") != socket.gethostname():
        return age > STALE_SECONDS
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return True
    if os.path.isdir("/proc/self"):
        return start_time(pid) != holder.get("start")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return False


class RunLock:
    """`with RunLock(workdir):` holds `workdir/lock` (created with O_EXCL, atomic also on NFS)
    while a run writes there; a second process on the directory gets a UserError naming the
    holder. Only the chief of a multi_worker run takes it: the other workers write elsewhere."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, LOCK_NAME)
        self.mine = _me()
        self._stop = threading.Event()

    def __enter__(self):
        for _ in range(3):  # a race with another taker-over: look again
            if self._create():
                threading.Thread(target=self._heartbeat, daemon=True).start()
                return self
            self._take_over_if_dead()
        raise UserError(f"cannot take the lock {self.path}: other processes keep taking it")

    def __exit__(self, *exc):
        self._stop.set()
        if self._read() == self.mine:  # never remove a lock someone else holds
            os.unlink(self.path)

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.mine, f)
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:  # a full disk: no empty lock left behind
            os.unlink(self.path)
            raise UserError(f"cannot write the lock {self.path}: {err.strerror}") from None
        return True

    def _read(self) -> Optional[dict]:
        try:
            with open(self.path, "rb") as f:
                return _parse(f.read())
        except FileNotFoundError:
            return None
        except OSError:
            return {}  # unreadable: as a torn lock, nobody holds it

    def _take_over_if_dead(self):
        holder = self._read()
        if holder is None:
            return
        try:
            age = time.time() - os.stat(self.path).st_mtime
        except FileNotFoundError:
            return
        who = _who(holder)
        if not _is_dead(holder, age):
            raise _in_use(os.path.dirname(self.path), holder)
        # Rename first, so that of two processes taking over only one removes this lock...
        grave = f"{self.path}.stale.{os.getpid()}"
        try:
            os.rename(self.path, grave)
        except FileNotFoundError:
            return
        with open(grave, "rb") as f:
            taken = f.read()
        if taken.strip() and _parse(taken) != holder:  # ...and a live lock put back
            os.rename(grave, self.path)
            return
        os.unlink(grave)
        warn(f"took over {self.path} from {who}, which is no longer running")

    def _heartbeat(self):
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                os.utime(self.path)
            except OSError:
                return


def _who(holder: dict) -> str:
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"


def _in_use(workdir: str, holder: dict) -> UserError:
    return UserError(f"{workdir} is in use by {_who(holder)} (since {holder.get('since', '?')}); "
                     "wait for it, stop it, or use another --logdir or --run_name")


def check_free(workdir: str):
    """UserError if a live process holds `workdir`'s lock: a quick look before the work of
    starting a run (taking the lock looks again)."""
    holder, age = _holder(workdir)
    if holder is not None and not _is_dead(holder, age):
        raise _in_use(workdir, holder)


def _holder(workdir: str):
    """(the lock's holder ({} if torn), its age in seconds), or (None, 0) if there is no lock."""
    path = os.path.join(workdir, LOCK_NAME)
    try:
        with open(path, "rb") as f:
            holder = _parse(f.read())
        return holder, time.time() - os.stat(path).st_mtime
    except OSError:
        return None, 0.0


def _parse(text: bytes) -> dict:
    """The holder a lock's bytes name; {} (nobody) if they are torn by a holder killed while
    writing them, or damaged: not UTF-8, not JSON, or JSON other than an object (a bare pid)."""
    try:
        holder = json.loads(text)
    except ValueError:  # UnicodeDecodeError among them
        return {}
    return holder if isinstance(holder, dict) else {}


def live_holder(workdir: str) -> Optional[int]:
    """The pid of the live process on this host that holds `workdir`'s lock, or None."""
    holder, age = _holder(workdir)
    if not holder or holder.get("host") != socket.gethostname() or _is_dead(holder, age):
        return None
    return holder["pid"]
