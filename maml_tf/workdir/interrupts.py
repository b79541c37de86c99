"""SIGINT / SIGTERM during training: finish the iteration, checkpoint, exit 130 / 143 with one line."""

import os
import signal
import threading

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal, as a shell reports it


class Interrupted(Exception):
    """Training stopped on a signal after saving; `main` prints the message and exits with `code`."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


class Interrupts:
    """`with Interrupts() as stop:` a first SIGINT/SIGTERM only sets `stop.signum` (the loop
    polls it between iterations, so a checkpoint is never cut in half); a second one exits at
    once. Outside the main thread (where handlers cannot be set) it does nothing."""

    def __init__(self):
        self.signum = None
        self._previous = {}
        self.saved = None  # the newest checkpoint's iteration, kept up to date by the loop
        self.on_abort = []  # callables run before a second signal exits (the lock's release)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in EXIT_CODES}
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame):
        if self.signum is not None:  # asked twice: the user does not want to wait
            self._abort(signum)
        self.signum = signum

    def _abort(self, signum):
        """Exits at once, with one line saying what is kept, the run directory unlocked."""
        for release in self.on_abort:
            try:
                release()
            except Exception:  # noqa: BLE001 - exiting anyway; the lock's staleness is detected
                pass
        kept = (f"the newest checkpoint, iteration {self.saved}, is kept" if self.saved
                else "nothing was saved")
        os.write(2, f"interrupted: {signal.Signals(signum).name} twice: exited at once without "
                    f"saving; {kept}\n".encode())
        os._exit(EXIT_CODES[signum])

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    def stop(self, message: str) -> Interrupted:
        return Interrupted(f"{self.name}: {message}", EXIT_CODES[self.signum])
