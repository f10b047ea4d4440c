"""The Chrome DevTools Protocol over `--remote-debugging-pipe`: the agent's line to the kiosk
window it supervises.

A pipe instead of a port: no other local process can connect to it (a DevTools port on
loopback would let any local user read the terminal token out of the page), and the browser
gets the token through it, never on its command line or in a URL. Messages are JSON objects
separated by a NUL byte; Chromium reads commands on its fd 3 and writes answers on its fd 4.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import json
import logging
import os
import re
from collections import deque
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

# Pipe ends are moved to fd numbers at least this high before the exec, so that the
# redirections below cannot overwrite each other (fds 0-9 may hold anything).
HIGH_FD = 10
# The browser's fds 3 (commands in) and 4 (answers out) come from these ends (bash accepts fd
# numbers above 9 in redirections; dash does not).
PIPE_EXEC = 'exec "$@" 3<&{cmd} 4>&{ans} {cmd}<&- {ans}>&-'
CLOSE_TIMEOUT_S = 3.0
# Chromium's last lines on stderr, kept to say why it exited (no display, a bad flag).
STDERR_LINES = 20
# Lines that never say why: no D-Bus on a kiosk PC, helpers noticing that the browser is gone.
STDERR_NOISE = ("dbus", "zygote", "unexpected operator")
LOG_PREFIX = re.compile(r"^\[[^\]]*\]\s*")  # [pid:tid:time:LEVEL:file:line]
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a screenshot of a 4K screen fits


class DevToolsError(Exception):
    """The browser answered a command with an error, did not answer in time, or is gone."""


def _high(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, HIGH_FD)
    os.close(fd)
    return moved


class DevToolsPipe:
    """One browser process started with `--remote-debugging-pipe`, and its command channel."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        reader: asyncio.StreamReader,
        writer: asyncio.WriteTransport,
    ) -> None:
        self.process = process
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.closed = asyncio.Event()
        self._task = asyncio.create_task(self._read(), name="devtools-pipe")
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_LINES)
        self._stderr_task = asyncio.create_task(self._read_stderr(), name="devtools-stderr")

    @classmethod
    async def launch(
        cls, argv: Sequence[str], *, env: dict[str, str] | None = None
    ) -> DevToolsPipe:
        """Start `argv` (a browser with `--remote-debugging-pipe`) in its own process group."""
        cmd_read, cmd_write = os.pipe()
        ans_read, ans_write = os.pipe()
        cmd_read, ans_write = _high(cmd_read), _high(ans_write)
        script = PIPE_EXEC.format(cmd=cmd_read, ans=ans_write)
        try:
            process = await asyncio.create_subprocess_exec(
                "/bin/bash", "-c", script, "browser", *argv,
                pass_fds=(cmd_read, ans_write),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,  # a process group: a hang is ended with all its children
            )  # fmt: skip
        except BaseException:
            for fd in (cmd_write, ans_read):
                os.close(fd)
            raise
        finally:
            os.close(cmd_read)
            os.close(ans_write)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_MESSAGE_BYTES)
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(ans_read, "rb", 0)
        )
        writer, _protocol = await loop.connect_write_pipe(
            asyncio.Protocol, os.fdopen(cmd_write, "wb", 0)
        )
        return cls(process, reader, writer)

    async def _read(self) -> None:
        try:
            while True:
                raw = await self._reader.readuntil(b"\0")
                message = json.loads(raw[:-1])
                waiter = self._waiting.pop(message.get("id", -1), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(message)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            log.debug("devtools pipe closed: %r", exc)
        finally:
            self.closed.set()
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(DevToolsError("the browser is gone"))
            self._waiting.clear()

    async def _read_stderr(self) -> None:
        """Drain stderr (a full pipe would block the browser), keeping its last lines."""
        if self.process.stderr is None:
            return
        while line := await self.process.stderr.readline():
            text = line.decode(errors="replace").strip()
            if text:
                self.stderr_tail.append(text)

    def last_words(self) -> str:
        """Chromium's last two telling lines on stderr (why it exited), or ""."""
        telling = [
            LOG_PREFIX.sub("", line)
            for line in self.stderr_tail
            if not any(noise in line for noise in STDERR_NOISE)
        ]
        return "; ".join(telling[-2:])[:300]

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
        timeout_s: float = 10.0,
    ) -> dict[str, Any]:
        """Send a command and return its `result` (raises DevToolsError)."""
        if self.closed.is_set():
            raise DevToolsError("the browser is gone")
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = waiter
        self._writer.write(json.dumps(message).encode() + b"\0")
        try:
            answer = await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            raise DevToolsError(f"{method}: no answer in {timeout_s:.0f} s") from None
        finally:
            self._waiting.pop(message_id, None)
        if "error" in answer:
            raise DevToolsError(f"{method}: {answer['error'].get('message', answer['error'])}")
        return dict(answer.get("result", {}))

    async def close(self) -> None:
        """Ask the browser to close (its pages close their connections), then end its process
        group and wait for it; close the pipe."""
        if self.process.returncode is None and not self.closed.is_set():
            with contextlib.suppress(DevToolsError):
                await self.send("Browser.close", timeout_s=CLOSE_TIMEOUT_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), CLOSE_TIMEOUT_S)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, 9)
        await self.process.wait()
        self._writer.close()
        for task in (self._task, self._stderr_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
