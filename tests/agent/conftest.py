"""An agent process (`confbridge terminal`) against the media stack of `tests/conftest.py`."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.servers import AgentProcess


@pytest.fixture
def agents() -> Iterator[Callable[[list[str]], AgentProcess]]:
    """`agents(args)` starts an agent process; every one is stopped after the test."""
    started: list[AgentProcess] = []

    def start(args: list[str]) -> AgentProcess:
        agent = AgentProcess(args)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()
