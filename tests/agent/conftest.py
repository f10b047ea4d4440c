"""The media stack of tests/sfu (control plane, a real worker, terminals) and an agent process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from confbridge.auth.models import Role
from confbridge.db import Database
from confbridge.meetings.models import Booking, Occurrence
from confbridge.sites.models import Site
from confbridge.timeutil import utcnow
from tests.sfu.conftest import Stack, loopback, peers, stack, stack_options  # noqa: F401

AGENT_STOP_TIMEOUT_S = 15.0


class AgentProcess:
    """`confbridge terminal` as a real process; its JSON log lines are collected as they come."""

    def __init__(self, args: list[str]) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("CONFBRIDGE_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "confbridge.cli", "terminal", "--log-format", "json", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=environment,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.raw.append(line.rstrip())
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                self.lines.append(entry)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in list(self.lines) if e.get("event") == name]

    async def wait_for(
        self,
        name: str,
        timeout_s: float,
        where: Callable[[dict[str, Any]], bool] = lambda _e: True,
        after: int = 0,
    ) -> dict[str, Any]:
        """The first `name` event (after the `after` first ones) matching `where`."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [e for e in self.events(name)[after:] if where(e)]
            if found:
                return found[0]
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(self.raw[-40:])
                raise AssertionError(f"agent: no {name!r} event in {timeout_s} s; log:\n{tail}")
            await asyncio.sleep(0.05)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=AGENT_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)
        return self.process.returncode


@pytest.fixture
def agents() -> Iterator[Callable[[list[str]], AgentProcess]]:
    started: list[AgentProcess] = []

    def start(args: list[str]) -> AgentProcess:
        agent = AgentProcess(args)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()


@pytest.fixture
def it_user(make_user: Callable[..., dict[str, str]]) -> dict[str, str]:
    return make_user(Role.it)


def pairing_code(running: Stack, it_user: dict[str, str], site: Site) -> str:
    """A new terminal for `site` and its pairing code, as IT staff get them."""
    response = httpx.post(
        f"{running.control}/api/v1/terminals",
        json={"site_id": site.id, "name": "Máy tính hội trường"},
        headers=it_user,
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["pairing"]["code"])


def move_occurrence(database: Database, occurrence_id: int, start_at: datetime) -> datetime:
    """Let the stack's occurrence start at `start_at` (seconds matter here) for an hour."""
    end_at = start_at + timedelta(hours=1)
    with database.session() as session:
        occurrence = session.get(Occurrence, occurrence_id)
        assert occurrence is not None
        occurrence.start_at, occurrence.end_at = start_at, end_at
        for booking in session.query(Booking).filter_by(occurrence_id=occurrence_id):
            booking.start_at, booking.end_at = start_at, end_at
        session.commit()
    return end_at


def soon(seconds: float) -> datetime:
    return (utcnow() + timedelta(seconds=seconds)).replace(microsecond=0)


async def attendance_of(running: Stack, site: Site) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(
            f"{running.control}/api/v1/occurrences/{running.occurrence_id}/attendance",
            headers=running.secretariat,
        )
    assert response.status_code == 200, response.text
    (record,) = [r for r in response.json()["records"] if r["site_id"] == site.id]
    return record


async def eventually(check: Callable[[], Awaitable[Any]], timeout_s: float, what: str) -> Any:
    """Poll `check` without blocking the event loop (the test's own peers live on it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} not seen in {timeout_s} s"
        await asyncio.sleep(0.2)
