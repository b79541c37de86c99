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

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in EXIT_CODES}
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame):
        if self.signum is not None:  # asked twice: the user does not want to wait
            os._exit(EXIT_CODES[signum])
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    def stop(self, message: str) -> Interrupted:
        return Interrupted(f"{self.name}: {message}", EXIT_CODES[self.signum])
