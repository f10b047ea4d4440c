"""What a user installs, tried as a user would: build the wheel, install it in a clean venv
outside the source tree, start `confbridge serve` from an empty directory, wait for /readyz,
and hold one meeting through join grants: the chair publishes (WHIP), a ward hall views
(WHEP) and decodes the chair's video and sound. Any problem fails loudly (exit 1).

    .venv/bin/python .ci/wheel_smoke.py            # what .ci/run does
    .venv/bin/python .ci/wheel_smoke.py --keep     # keep the work directory for a look

The second half (`--client`) runs inside the clean venv, so that everything it imports (the
terminal agent's WHIP/WHEP session, its test pattern and tone) comes from the wheel.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 120.0
CLIENT_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 30.0
MEDIA_TIMEOUT_S = 30.0
EVENTS_TIMEOUT_S = 30.0
FRAMES_WANTED = 15  # about half a second of the chair's camera and microphone
DEMO_TOKEN = re.compile(r"token \(shown once\): (cbt_\S+)")
ZONE = "Asia/Ho_Chi_Minh"


class SmokeFailure(Exception):
    """A step did not do what a user would expect."""


def say(message: str) -> None:
    print(f"wheel smoke: {message}", flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(command: list[str], **kwargs: Any) -> None:
    say("$ " + " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise SmokeFailure(
            f"{command[0]} failed ({result.returncode}):\n{result.stdout[-4000:]}"
            f"\n{result.stderr[-4000:]}"
        )


class Served:
    """`confbridge serve` of the clean venv, its output kept line by line."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        # a process group of its own: its workers can be found (and ended) after it stops
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.leftovers = False
        for stream, lines in (
            (self.process.stdout, self.stdout),
            (self.process.stderr, self.stderr),
        ):
            threading.Thread(target=self._collect, args=(stream, lines), daemon=True).start()

    @staticmethod
    def _collect(stream: Any, lines: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            lines.append(raw.decode(errors="replace").rstrip("\n"))

    def output(self, tail: int = 60) -> str:
        return (
            "--- serve stdout\n"
            + "\n".join(self.stdout[-tail:])
            + "\n--- serve stderr\n"
            + "\n".join(self.stderr[-tail:])
        )

    def wait_ready(self, url: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SmokeFailure(f"serve exited with {self.process.returncode} before ready")
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=3) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                last = f"{exc.code} {exc.read().decode(errors='replace')[:300]}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.5)
        raise SmokeFailure(f"/readyz did not answer 200 within {READY_TIMEOUT_S:.0f} s: {last}")

    def stop(self) -> int:
        """SIGTERM, as systemd or docker stop it; then end whatever of its group is left."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
                    raise SmokeFailure(
                        f"serve did not stop within {STOP_TIMEOUT_S:.0f} s of SIGTERM"
                    ) from None
            return self.process.returncode
        finally:
            self._end_group()

    def _end_group(self) -> None:
        group = self.process.pid  # the session leader's pid is the group's id
        for sig, grace_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            self.leftovers = True
            os.killpg(group, sig)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline:
                try:
                    os.killpg(group, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.1)


def smoke(work: Path) -> None:
    dist, venv, home = work / "dist", work / "venv", work / "empty"
    home.mkdir()
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)])
    (wheel,) = dist.glob("confbridge-*.whl")
    run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "-q", str(wheel)], cwd=home)

    port, worker_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    admin_password = secrets.token_urlsafe(18)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CONFBRIDGE_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(
        {
            "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            "CONFBRIDGE_ADMIN_PASSWORD": admin_password,
            "CONFBRIDGE_SFU__LOCAL_WORKERS": "1",
            "CONFBRIDGE_SFU__PUBLIC_URL": f"http://127.0.0.1:{worker_port}",
        }
    )
    say(f"$ confbridge serve --port {port}   (in {home}, nothing else there)")
    served = Served([str(venv / "bin" / "confbridge"), "serve", "--port", str(port)], home, env)
    try:
        served.wait_ready(url)
        say("ready")
        stdout = "\n".join(served.stdout)
        token = DEMO_TOKEN.search(stdout)
        if token is None:
            raise SmokeFailure("no demo terminal token on the first start (no demo seeded?)")
        if f"sign in at {url}/sign-in" not in stdout:
            raise SmokeFailure("the first-start block does not say where to sign in")
        client = subprocess.run(
            [str(python), str(Path(__file__).resolve()), "--client", url, token.group(1)],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=CLIENT_TIMEOUT_S,
        )
        for line in client.stdout.splitlines():
            say(f"  {line}")
        if client.returncode != 0:
            raise SmokeFailure(f"the meeting failed:\n{client.stderr[-6000:]}")
        code = served.stop()
        # uvicorn ends by re-raising the SIGTERM it handled: -15 is a clean stop as well
        if code not in (0, -signal.SIGTERM):
            raise SmokeFailure(f"serve exited with {code} after SIGTERM")
        say(f"serve stopped (exit {code})")
        if served.leftovers:
            raise SmokeFailure("SFU worker processes outlived serve")
        check_private(home / "data")
        logged = "\n".join(served.stderr)
        for secret in (admin_password, token.group(1)):
            if secret in logged:
                raise SmokeFailure("a credential appears in serve's log lines")
    except BaseException:
        served.stop()
        print(served.output(), file=sys.stderr)
        raise


def check_private(data_dir: Path) -> None:
    """The data directory and everything in it: the service's user alone."""
    opened = [
        f"{path} {oct(stat.S_IMODE(path.stat().st_mode))}"
        for path in [data_dir, *data_dir.rglob("*")]
        if stat.S_IMODE(path.stat().st_mode) & 0o077
    ]
    if opened:
        raise SmokeFailure("data dir entries open to other users:\n" + "\n".join(opened))
    say(f"data dir {data_dir} is private ({sum(1 for _ in data_dir.rglob('*'))} entries)")


# --- the client: runs inside the clean venv ------------------------------------------------


async def client(server: str, chair_token: str) -> None:
    import httpx

    import confbridge
    from confbridge.agent.client import ControlClient
    from confbridge.agent.media import PatternTrack, ToneTrack
    from confbridge.agent.session import MeetingSession
    from confbridge.packaged import packaged_path

    installed = Path(confbridge.__file__).resolve()
    if REPO in installed.parents:
        raise SmokeFailure(f"confbridge imported from the source tree ({installed})")
    for name in ("config.yaml", "schedules"):
        shipped = packaged_path(name)
        if shipped is None or installed.parent not in shipped.parents:
            raise SmokeFailure(f"{name} is not package data of the wheel ({shipped})")
    print(f"confbridge from {installed.parent}, with its config.yaml and schedules")

    password = os.environ["CONFBRIDGE_ADMIN_PASSWORD"]
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        signed = await http.post(
            "/api/v1/auth/token", data={"username": "admin", "password": password}
        )
        expect(signed, 200, "sign in as admin")
        admin = {"Authorization": f"Bearer {signed.json()['access_token']}"}
        chair = ControlClient(server, chair_token)
        me = await chair.me()
        sites = await http.get("/api/v1/sites", params={"limit": 100}, headers=admin)
        expect(sites, 200, "list the sites")
        ward_site = next(s for s in sites.json()["items"] if s["id"] != me.site_id)
        occurrence_id = await meeting_now(http, admin, chair, me.site_id, ward_site["id"])
        created = await http.post(
            f"/api/v1/sites/{ward_site['id']}/terminals", json={"name": "smoke"}, headers=admin
        )
        expect(created, 201, "create a terminal for the ward hall")
        ward = ControlClient(server, created.json()["token"])
        print(f"meeting {occurrence_id}: chair '{me.site_name}', ward '{ward_site['name']}'")

        chair_session = MeetingSession(await chair.join(occurrence_id), PatternTrack(), ToneTrack())
        ward_grant = await ward.join(occurrence_id)
        ward_session = MeetingSession(ward_grant, PatternTrack(), ToneTrack())
        try:
            await chair_session.start()  # WHIP publish (and WHEP view) with the chair's grant
            await ward_session.start()
            received = ward_session.received
            deadline = time.monotonic() + MEDIA_TIMEOUT_S
            while min(received.video_frames, received.audio_frames) < FRAMES_WANTED:
                if time.monotonic() > deadline:
                    raise SmokeFailure(f"the ward hall received too little: {received}")
                await asyncio.sleep(0.1)
            print(
                f"ward hall decoded {received.video_frames} video frames "
                f"({received.width}x{received.height}) and {received.audio_frames} audio frames "
                f"from {ward_grant.whep_url}"
            )
        finally:
            await chair_session.close()
            await ward_session.close()
            await chair.close()
            await ward.close()

        await joined_events(http, admin, occurrence_id, {me.site_id, ward_site["id"]})


def expect(response: Any, status: int, what: str) -> None:
    if response.status_code != status:
        raise SmokeFailure(f"{what}: {response.status_code} {response.text[:500]}")


async def meeting_now(
    http: Any, admin: dict[str, str], chair: Any, chair_site: int, ward: int
) -> int:
    """A meeting that can be joined now: booked for the next minutes, or, when the demo's own
    briefing is on at this hour (the booking clashes), that one (it invites every demo site)."""
    from zoneinfo import ZoneInfo

    start = datetime.now(ZoneInfo(ZONE)).replace(second=0, microsecond=0, tzinfo=None)
    body = {
        "title": "Kiểm tra cài đặt / install check",
        "kind": "khac",
        "mode": "online",
        "rrule": "FREQ=DAILY;COUNT=1",
        "dtstart": start.isoformat(),
        "tz": ZONE,
        "duration_min": 10,
        "chair_site_id": chair_site,
        "site_ids": [ward],
        "skip_holidays": False,
    }
    booked = await http.post("/api/v1/series", json=body, headers=admin)
    if booked.status_code == 409:
        agenda = await chair.agenda()
        now = datetime.now().astimezone()
        for item in agenda.items:
            if item.start_at - timedelta(minutes=15) <= now < item.end_at:
                return item.occurrence_id
        raise SmokeFailure(f"booking clashed and nothing is on now: {booked.text[:500]}")
    expect(booked, 201, "book a meeting starting now")
    occurrences = await http.get(f"/api/v1/series/{booked.json()['id']}/occurrences", headers=admin)
    expect(occurrences, 200, "list the booked occurrence")
    (occurrence,) = occurrences.json()["items"]
    return int(occurrence["id"])


async def joined_events(
    http: Any, admin: dict[str, str], occurrence_id: int, sites: set[int]
) -> None:
    """The worker's join events reach the control plane (attendance is built on them)."""
    deadline = time.monotonic() + EVENTS_TIMEOUT_S
    while True:
        answer = await http.get(
            f"/api/v1/occurrences/{occurrence_id}/events",
            params={"type": "joined", "limit": 100},
            headers=admin,
        )
        expect(answer, 200, "list the meeting's events")
        joined = {event["site_id"] for event in answer.json()["items"]}
        if sites <= joined:
            print(f"joined events of sites {sorted(sites)} stored by the control plane")
            return
        if time.monotonic() > deadline:
            raise SmokeFailure(f"joined events of {sorted(sites - joined)} never arrived")
        await asyncio.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", nargs=2, metavar=("SERVER", "CHAIR_TOKEN"))
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    arguments = parser.parse_args()
    if arguments.client:
        try:
            asyncio.run(client(*arguments.client))
        except SmokeFailure as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    work = Path(tempfile.mkdtemp(prefix="confbridge-wheel-smoke-"))
    started = time.monotonic()
    try:
        smoke(work)
    except (SmokeFailure, subprocess.TimeoutExpired) as exc:
        say(f"FAILED: {exc}")
        say(f"work directory kept: {work}")
        print("smoke: 0 passed, 1 failed", flush=True)
        return 1
    say(f"passed in {time.monotonic() - started:.0f} s")
    print("smoke: 1 passed, 0 failed", flush=True)
    if arguments.keep:
        say(f"work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
