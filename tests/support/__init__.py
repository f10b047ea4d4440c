"""The tests' shared harness: plain functions and classes that fixtures, tests and the
benchmarks in `bench/` call.

- `factories`: settings, units and sites, users, series and occurrences, terminals, nodes.
- `database`: a throw-away PostgreSQL schema per run, emptying the tables between tests.
- `events`: SFU events as a worker posts them (attendance, reports).
- `servers`: apps on real uvicorn servers, the control plane with SFU worker processes
  (`Stack`), a webhook receiver, the terminal agent as a process.
- `peers`: aiortc WHIP publishers and WHEP viewers.
- `polling`: waiting for a condition without blocking the event loop.
- `browsers`: Debian's Chromium driven by Playwright.
- `netns`: Linux network namespaces as separate hosts.
- `web`: the sign-in form and its CSRF field.

Submodules are imported on demand (`from tests.support.servers import ServerThread`), so a
unit test pays only for what it uses.
"""
