"""Start bench/workers.py roles as child processes and talk to them line by line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


class Child:
    """A child process speaking a line protocol: it prints `ready`, `result {json}`, `error ...`
    lines and reads commands on stdin.

    By default the child is `bench/workers.py ROLE ARGS`; `command` replaces the part before
    ROLE (e.g. `[script, "--role"]` for a script that hosts its own roles).
    """

    def __init__(self, role: str, args: dict[str, Any], command: list[str] | None = None) -> None:
        self.role = role
        self.proc = subprocess.Popen(
            [sys.executable, *(command or [os.path.join(HERE, "workers.py")]), role, json.dumps(args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # inherit: the child's warnings show up in the run's stderr
            text=True,
            bufsize=1,
        )
        self.lines: list[str] = []
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cv:
                self.lines.append(line.rstrip("\n"))
                self._cv.notify_all()
        with self._cv:
            self.lines.append("<eof>")
            self._cv.notify_all()

    def expect(self, prefix: str, timeout: float = 60.0) -> str:
        """Wait for the next unread line starting with `prefix` (returns the rest)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for i, line in enumerate(self.lines):
                    if line.startswith(prefix):
                        del self.lines[: i + 1]
                        return line[len(prefix) :].strip()
                    if line.startswith("error ") or line == "<eof>":
                        raise RuntimeError(f"{self.role}: {line}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.role}: no {prefix!r} line within {timeout} s; got {self.lines}")
                self._cv.wait(left)

    def send(self, line: str = "go") -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def result(self, timeout: float = 120.0) -> dict[str, Any]:
        return json.loads(self.expect("result ", timeout))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    @property
    def pid(self) -> int:
        return self.proc.pid


def stop_children(*children: Child | None) -> None:
    for c in children:
        if c is not None:
            c.kill()
