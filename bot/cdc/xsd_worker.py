"""XSD validation of a big file in a child process, so that its errors cost the parent no GIL.

The parent passes the file descriptor (same open file, so the parent can see how far the child
has read) and reads one JSON line per error from the child's standard output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bot.cdc.native import CompiledSchema, RawError, StreamValidation


def main() -> int:
    """Child side: `main()` with argv = [schema path, max errors, fd]."""
    schema_path, limit, fd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    out = sys.stdout

    def emit(error: RawError) -> None:
        out.write(json.dumps([error.line, error.code, error.message, error.value]) + "\n")
        out.flush()

    validation = StreamValidation(CompiledSchema(Path(schema_path)), fd, max_errors=limit)
    validation.on_error = emit
    validation.run_here()
    return 0 if validation.failure is None else 3


class ProcessValidation:
    """Same interface as StreamValidation, the work done by `python -c … xsd_worker`."""

    def __init__(self, schema: CompiledSchema, fd: int, *, max_errors: int) -> None:
        self._schema = schema
        self._fd = fd
        self._max_errors = max_errors
        self.errors: list[RawError] = []
        self.failure: BaseException | None = None
        self._pending = b""
        self._process: subprocess.Popen[bytes] | None = None
        self._finished = False

    def start(self) -> None:
        code = "import sys; from bot.cdc.xsd_worker import main; sys.exit(main())"
        self._process = subprocess.Popen(  # noqa: S603 — our own interpreter and module
            [sys.executable, "-c", code, str(self._schema.path), str(self._max_errors),
             str(self._fd)],
            pass_fds=(self._fd,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        assert self._process.stdout is not None  # noqa: S101 — set by PIPE above
        os.set_blocking(self._process.stdout.fileno(), False)

    def poll(self) -> None:
        """Take in the errors the child has written so far."""
        process = self._process
        if process is None or process.stdout is None or self._finished:
            return
        while True:
            try:
                data = os.read(process.stdout.fileno(), 1 << 16)
            except BlockingIOError:
                return
            if not data:
                self._close()
                return
            self._take(data)

    def _take(self, data: bytes) -> None:
        lines = (self._pending + data).split(b"\n")
        self._pending = lines.pop()
        for line in lines:
            number, code, message, value = json.loads(line)
            self.errors.append(RawError(number, code, message, value))

    def _close(self) -> None:
        process = self._process
        if process is None or self._finished:
            return
        self._finished = True
        returncode = process.wait()
        problem = process.stderr.read().decode("utf-8", "replace") if process.stderr else ""
        if process.stdout is not None:
            process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()
        if returncode not in (0, -9, -15):
            self.failure = RuntimeError(f"validation XSD interrompue ({returncode}) : {problem}")

    @property
    def done(self) -> bool:
        self.poll()
        return self._finished

    def stop(self) -> None:
        if self._process is not None and not self._finished:
            self._process.kill()

    def join(self) -> None:
        process = self._process
        if process is None or process.stdout is None:
            return
        if not self._finished:
            os.set_blocking(process.stdout.fileno(), True)
            while data := os.read(process.stdout.fileno(), 1 << 16):
                self._take(data)
            self._close()
