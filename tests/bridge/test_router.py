"""Joining, the floor and worker events over HTTP, against a real database and real servers."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from confbridge import signing
from confbridge.auth.models import AuditEntry, Role
from confbridge.bridge import service as bridge_service
from confbridge.bridge.models import SfuEventRecord
from confbridge.db import Database
from confbridge.errors import Conflict, Forbidden
from confbridge.meetings.models import Occurrence
from confbridge.nodes import placement
from confbridge.nodes import service as node_service
from confbridge.nodes.models import SfuNode
from confbridge.settings import MeetingSettings, Settings
from confbridge.sites import service as site_service
from confbridge.sites.models import Site
from confbridge.terminals import service as terminal_service
from confbridge.timeutil import utcnow
from confbridge_kernel.contracts import (
    EventType,
    FloorCommand,
    FloorState,
    GrantPurpose,
    NodeHeartbeat,
    PeerRole,
    PeerStats,
    SfuEvent,
    room_name,
)
from sfu.grants import GrantVerifier
from tests.support.factories import enrol_node, let_node_hold, make_settings
from tests.support.servers import ServerThread, free_port

Headers = dict[str, str]
NODE_SECRET = "node-secret-for-tests-0123456789abcdef"
PUBLIC_URL = "https://sfu.example.test:8443"
ICE = [
    {"urls": ["stun:stun.example.test:3478"]},
    {"urls": "turn:t.example.test", "username": "u", "credential": "c"},
]
NODE_ID = "node-a"


# --- a stand-in for the worker's admin API ------------------------------------------------------


@dataclass
class StubWorker:
    """Answers `POST /rooms/{room}/floor` as a worker would, and remembers what it was sent."""

    url: str = ""
    open_rooms: set[str] = field(default_factory=set)
    received: list[tuple[str, str, FloorCommand]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/rooms/{room}/floor")
        async def floor(room: str, request: Request) -> JSONResponse:
            command = FloorCommand.model_validate(await request.json())
            self.received.append((room, request.headers.get("authorization", ""), command))
            if room not in self.open_rooms:
                return JSONResponse({"detail": f"no room {room}"}, status_code=404)
            speaker = command.site_id if command.action == "give" else 1
            state = FloorState(
                room=room,
                speaker_site_id=speaker,
                chair_site_id=1,
                muted_site_ids=[command.site_id] if command.action == "mute" else [],
                hands=[command.site_id] if command.action == "raise_hand" else [],
            )
            return JSONResponse(state.model_dump(mode="json"))

        return app


@pytest.fixture(scope="module")
def worker() -> Iterator[StubWorker]:
    stub = StubWorker()
    server = ServerThread(stub.app()).start()
    stub.url = server.url
    yield stub
    server.stop()


@pytest.fixture
def settings(database: Database, tmp_path: Path, worker: StubWorker) -> Settings:
    """The shared settings, with this module's worker and node secret."""
    worker.open_rooms.clear()
    worker.received.clear()
    return bridge_settings(database, tmp_path)


@pytest.fixture(autouse=True)
def node(database: Database, worker: StubWorker) -> Headers:
    """node-a, enrolled and up: terminals reach it at PUBLIC_URL, the control plane at the
    stub worker; the Authorization headers of its own key."""
    headers = enrol_node(database, NODE_ID)
    register(database, internal_url=worker.url)
    return headers


def register(database: Database, *, internal_url: str) -> None:
    with database.session() as session:
        node_service.heartbeat(
            session=session,
            beat=NodeHeartbeat(
                node_id=NODE_ID,
                public_url=PUBLIC_URL,
                internal_url=internal_url,
                capacity_peers=1000,
            ),
            now=utcnow(),
        )
        session.commit()


def bridge_settings(database: Database, data_dir: Path, **sfu: Any) -> Settings:
    values = {"public_url": PUBLIC_URL, "node_secret": NODE_SECRET, "ice_servers": ICE, **sfu}
    return make_settings(database.settings.database_url or "", data_dir, sfu=values)


# --- meetings and terminals ---------------------------------------------------------------------


@pytest.fixture
def meeting(client: TestClient, secretariat: Headers, sites: dict[str, Site]) -> Callable[..., int]:
    """Book a one-off meeting (chair hq; p1, p2 invited) and move it to start at `start_at`."""

    def book(start_at: datetime, duration_min: int = 60) -> int:
        body = {
            "title": f"Giao ban {uuid.uuid4().hex[:6]}",
            "kind": "giao_ban",
            "rrule": "FREQ=DAILY;COUNT=1",
            "dtstart": "2031-01-06T08:00:00",
            "duration_min": duration_min,
            "chair_site_id": sites["hq"].id,
            "site_ids": [sites["p1"].id, sites["p2"].id],
            "skip_holidays": False,
        }
        created = client.post("/api/v1/series", json=body, headers=secretariat)
        assert created.status_code == 201, created.text
        listed = client.get(
            f"/api/v1/series/{created.json()['id']}/occurrences?from=2000-01-01&to=2100-01-01",
            headers=secretariat,
        )
        occurrence_id = listed.json()["items"][0]["id"]
        moved = client.patch(
            f"/api/v1/occurrences/{occurrence_id}",
            json={"start_at": start_at.isoformat(), "record_past": True},
            headers=secretariat,
        )
        assert moved.status_code == 200, moved.text
        return occurrence_id

    return book


@pytest.fixture
def terminal(database: Database, sites: dict[str, Site]) -> Callable[[str], Headers]:
    """Authorization headers of a new terminal of site `name` (hq, p1, p2, dept)."""

    def make(name: str) -> Headers:
        with database.session() as session:
            site = session.get(Site, sites[name].id)
            assert site is not None
            _, token = terminal_service.create_with_token(session=session, site=site)
            session.commit()
        return {"Authorization": f"Bearer {token}"}

    return make


def now() -> datetime:
    return datetime.now(UTC)


def join(client: TestClient, occurrence_id: int, headers: Headers) -> httpx.Response:
    return client.post(f"/api/v1/occurrences/{occurrence_id}/join", headers=headers)


def public_pem(client: TestClient) -> str:
    settings: Settings = client.app.state.settings  # type: ignore[attr-defined]
    return signing.signer_for(settings.grant_key_path).public_pem


def fetched_pem(client: TestClient, node: Headers) -> str:
    """The grant key as a node on another machine fetches it, with its own key."""
    response = client.get("/api/v1/sfu/grant-key", headers=node)
    assert response.status_code == 200, response.text
    return response.text


# --- joining ------------------------------------------------------------------------------------


def test_join_chair_terminal_gets_a_chair_grant(
    client: TestClient,
    meeting: Callable[..., int],
    terminal: Callable[[str], Headers],
    sites: dict[str, Site],
) -> None:
    start_at = now() + timedelta(minutes=5)
    occurrence_id = meeting(start_at, duration_min=60)
    response = join(client, occurrence_id, terminal("hq"))
    assert response.status_code == 200, response.text
    info = response.json()
    room = room_name(occurrence_id)
    assert info["whip_url"] == f"{PUBLIC_URL}/whip/{room}"
    assert info["whep_url"] == f"{PUBLIC_URL}/whep/{room}"
    assert info["role"] == "chair"
    assert info["ice_servers"] == ICE
    claims = GrantVerifier(public_pem(client).encode()).verify(info["token"], room=room)
    assert (claims.room, claims.occurrence_id, claims.role) == (room, occurrence_id, PeerRole.chair)
    assert (claims.site_id, claims.site_name) == (sites["hq"].id, sites["hq"].name)
    assert claims.chair_site_id == sites["hq"].id
    assert abs(claims.starts_at - start_at) < timedelta(milliseconds=1)
    # the room closes after the meeting and the time it may run over
    grace = timedelta(minutes=MeetingSettings().overrun_grace_min)
    assert claims.ends_at - claims.starts_at == timedelta(minutes=60) + grace
    # A short meeting: the grant ends 30 minutes after it may close, and says so.
    expected_exp = int((claims.ends_at + bridge_service.GRANT_OVERRUN_MARGIN).timestamp())
    assert claims.exp == expected_exp
    assert datetime.fromisoformat(info["expires_at"]).timestamp() == expected_exp


def test_join_invited_site_gets_a_site_grant(
    client: TestClient,
    meeting: Callable[..., int],
    terminal: Callable[[str], Headers],
    sites: dict[str, Site],
) -> None:
    occurrence_id = meeting(now() + timedelta(minutes=1))
    response = join(client, occurrence_id, terminal("p1"))
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "site"
    verifier = GrantVerifier(public_pem(client).encode())
    claims = verifier.verify(response.json()["token"], room=room_name(occurrence_id))
    assert (claims.site_id, claims.role) == (sites["p1"].id, PeerRole.site)
    assert claims.chair_site_id == sites["hq"].id


def test_join_content_grant_for_the_chair_and_not_for_a_site_without_the_floor(
    client: TestClient, meeting: Callable[..., int], terminal: Callable[[str], Headers]
) -> None:
    occurrence_id = meeting(now())
    url = f"/api/v1/occurrences/{occurrence_id}/join"
    # a site's floor is the worker's: with no room open, it cannot have it
    site = client.post(url, json={"purpose": "content"}, headers=terminal("p1"))
    assert site.status_code == 409 and "not open" in site.json()["detail"]
    chair = client.post(url, json={"purpose": "content"}, headers=terminal("hq"))
    assert chair.status_code == 200, chair.text
    assert chair.json()["purpose"] == "content"
    claims = GrantVerifier(public_pem(client).encode()).verify(
        chair.json()["token"], room=room_name(occurrence_id)
    )
    assert claims.purpose is GrantPurpose.content
    plain = client.post(url, json={}, headers=terminal("p1"))
    assert plain.status_code == 200 and plain.json()["purpose"] == "media"
    unknown = client.post(url, json={"purpose": "slides"}, headers=terminal("p1"))
    assert unknown.status_code == 422


def test_join_gallery_grant_for_the_chair_terminal_and_gallery_roles_only(
    client: TestClient,
    meeting: Callable[..., int],
    terminal: Callable[[str], Headers],
    secretariat: Headers,
    make_user: Callable[..., Headers],
) -> None:
    """The gallery (điểm danh): the chair site's terminal, secretariat, IT and admin users get
    a view-only grant of no site; another site's terminal and a viewer user are refused."""
    occurrence_id = meeting(now())
    url = f"/api/v1/occurrences/{occurrence_id}/join"
    gallery = {"purpose": "gallery"}
    verifier = GrantVerifier(public_pem(client).encode())
    for headers in (terminal("hq"), secretariat, make_user(Role.it), make_user(Role.admin)):
        granted = client.post(url, json=gallery, headers=headers)
        assert granted.status_code == 200, granted.text
        body = granted.json()
        assert (body["purpose"], body["role"]) == ("gallery", "viewer")
        assert body["whep_url"] == f"{PUBLIC_URL}/whep/{room_name(occurrence_id)}"
        claims = verifier.verify(body["token"], room=room_name(occurrence_id))
        assert claims.purpose is GrantPurpose.gallery
        assert (claims.site_id, claims.role) == (0, PeerRole.viewer)
    site = client.post(url, json=gallery, headers=terminal("p1"))
    assert site.status_code == 403 and "chair site" in site.json()["detail"]
    viewer = client.post(url, json=gallery, headers=make_user(Role.viewer))
    assert viewer.status_code == 403 and "gallery" in viewer.json()["detail"]
    # a user gets no other grant
    media = client.post(url, json={"purpose": "media"}, headers=secretariat)
    assert media.status_code == 403 and "gallery" in media.json()["detail"]
    early = meeting(now() + timedelta(hours=3))
    refused = client.post(f"/api/v1/occurrences/{early}/join", json=gallery, headers=secretariat)
    assert refused.status_code == 409 and refused.json()["detail"].startswith("joining opens")


def test_join_grant_key_is_only_the_public_key(client: TestClient, node: Headers) -> None:
    pem = fetched_pem(client, node)
    assert pem == public_pem(client)
    assert isinstance(serialization.load_pem_public_key(pem.encode()), Ed25519PublicKey)
    assert "PRIVATE" not in pem


def test_join_opens_join_early_min_before_the_start(
    client: TestClient, meeting: Callable[..., int], terminal: Callable[[str], Headers]
) -> None:
    inside = meeting(now() + timedelta(minutes=15) - timedelta(seconds=10))
    outside = meeting(now() + timedelta(hours=3, minutes=15, seconds=60))
    p1 = terminal("p1")
    assert join(client, inside, p1).status_code == 200
    refused = join(client, outside, p1)
    assert refused.status_code == 409
    assert refused.json()["detail"].startswith("joining opens at")
    assert "15 minutes before" in refused.json()["detail"]
    assert "opens_at" in refused.json()


def test_join_closes_once_the_meeting_may_no_longer_run_over(
    client: TestClient, meeting: Callable[..., int], terminal: Callable[[str], Headers]
) -> None:
    running = meeting(now() - timedelta(seconds=30), duration_min=1)
    running_over = meeting(now() - timedelta(minutes=65), duration_min=60)  # 5 of 10 min
    ended = meeting(now() - timedelta(hours=3), duration_min=60)
    p2 = terminal("p2")
    assert join(client, running, p2).status_code == 200
    assert join(client, running_over, p2).status_code == 200
    refused = join(client, ended, p2)
    assert refused.status_code == 409
    assert "ended" in refused.json()["detail"]


def test_join_window_edges_exactly(
    session: Session, meeting: Callable[..., int], sites: dict[str, Site], settings: Settings
) -> None:
    """Open from start − join_early_min inclusive, closed from the end plus the time a meeting
    may run over, inclusive."""
    occurrence_id = meeting(datetime(2031, 5, 5, 1, 0, tzinfo=UTC), duration_min=90)
    occurrence = session.get(Occurrence, occurrence_id)
    assert occurrence is not None
    site = session.get(Site, sites["p1"].id)
    signer = signing.signer_for(settings.grant_key_path)
    opens_at = occurrence.start_at - timedelta(minutes=settings.sfu.join_early_min)
    tick = timedelta(microseconds=1)

    def attempt(at: datetime) -> str:
        node = session.get(SfuNode, NODE_ID)
        assert node is not None
        node.last_seen_at = at  # the node is up at that moment
        try:
            bridge_service.join(
                session=session,
                occurrence_id=occurrence_id,
                site=site,  # type: ignore[arg-type]
                settings=settings.sfu,
                signer=signer,
                now=at,
                tz=settings.meetings.default_tz,
                overrun_grace_min=settings.meetings.overrun_grace_min,
            )
        except Conflict:
            return "refused"
        return "joined"

    assert attempt(opens_at - tick) == "refused"
    assert attempt(opens_at) == "joined"
    closes_at = occurrence.end_at + timedelta(minutes=settings.meetings.overrun_grace_min)
    assert attempt(occurrence.end_at) == "joined"
    assert attempt(closes_at - tick) == "joined"
    assert attempt(closes_at) == "refused"


def test_join_site_not_invited_is_forbidden(
    client: TestClient, meeting: Callable[..., int], terminal: Callable[[str], Headers]
) -> None:
    occurrence_id = meeting(now())
    response = join(client, occurrence_id, terminal("dept"))
    assert response.status_code == 403
    assert "not invited" in response.json()["detail"]


def test_join_cancelled_occurrence_is_a_conflict(
    client: TestClient,
    meeting: Callable[..., int],
    terminal: Callable[[str], Headers],
    secretariat: Headers,
) -> None:
    occurrence_id = meeting(now())
    cancel = client.patch(
        f"/api/v1/occurrences/{occurrence_id}", json={"status": "cancelled"}, headers=secretariat
    )
    assert cancel.status_code == 200
    response = join(client, occurrence_id, terminal("p1"))
    assert response.status_code == 409
    assert "cancelled" in response.json()["detail"]


def test_join_needs_a_terminal(
    client: TestClient, meeting: Callable[..., int], secretariat: Headers
) -> None:
    occurrence_id = meeting(now())
    assert join(client, occurrence_id, secretariat).status_code == 403
    assert join(client, occurrence_id, {}).status_code == 401


def test_join_unknown_occurrence_is_not_found(
    client: TestClient, terminal: Callable[[str], Headers], sites: dict[str, Site]
) -> None:
    response = join(client, 987654, terminal("p1"))
    assert response.status_code == 404


# --- the floor ----------------------------------------------------------------------------------


def place(database: Database, occurrence_id: int) -> None:
    """The room placed on node-a, as its first join does."""
    with database.session() as session:
        placement.place_room(session=session, occurrence_id=occurrence_id, now=utcnow())
        session.commit()


@pytest.fixture
def live_meeting(meeting: Callable[..., int], worker: StubWorker, database: Database) -> int:
    """A running meeting whose room is open on the worker."""
    occurrence_id = meeting(now() - timedelta(minutes=5))
    place(database, occurrence_id)
    worker.open_rooms.add(room_name(occurrence_id))
    return occurrence_id


def floor(
    client: TestClient, occurrence_id: int, headers: Headers, action: str, site_id: int | None
) -> httpx.Response:
    body: dict[str, Any] = {"action": action}
    if site_id is not None:
        body["site_id"] = site_id
    return client.post(f"/api/v1/occurrences/{occurrence_id}/floor", json=body, headers=headers)


# (who, action, target site or None, expected status)
FLOOR_MATRIX = [
    ("terminal:hq", "give", "p1", 200),
    ("terminal:hq", "take", None, 200),
    ("terminal:hq", "mute", "p2", 200),
    ("terminal:hq", "unmute", "p2", 200),
    ("terminal:hq", "mute_all", None, 200),
    ("terminal:p1", "raise_hand", None, 200),
    ("terminal:p1", "raise_hand", "p1", 200),
    ("terminal:p1", "lower_hand", None, 200),
    ("terminal:p1", "raise_hand", "p2", 403),
    ("terminal:p1", "give", "p1", 403),
    ("terminal:p1", "take", None, 403),
    ("terminal:p1", "mute", "p2", 403),
    ("terminal:p1", "mute_all", None, 403),
    ("terminal:dept", "raise_hand", None, 403),
    ("terminal:dept", "give", "p1", 403),
    ("user:secretariat", "give", "p2", 200),
    ("user:secretariat", "mute_all", None, 200),
    ("user:secretariat", "raise_hand", "p1", 200),
    ("user:secretariat", "lower_hand", "p1", 200),
    ("user:admin", "mute", "p1", 200),
    ("user:viewer", "give", "p1", 403),
    ("user:viewer", "raise_hand", "p1", 403),
    ("user:it", "take", None, 403),
]


@pytest.mark.parametrize(("who", "action", "target", "expected"), FLOOR_MATRIX)
def test_floor_permission_matrix(
    who: str,
    action: str,
    target: str | None,
    expected: int,
    client: TestClient,
    live_meeting: int,
    terminal: Callable[[str], Headers],
    make_user: Callable[..., Headers],
    sites: dict[str, Site],
    worker: StubWorker,
) -> None:
    kind, name = who.split(":")
    headers = terminal(name) if kind == "terminal" else make_user(Role(name))
    site_id = sites[target].id if target else None
    response = floor(client, live_meeting, headers, action, site_id)
    assert response.status_code == expected, response.text
    if expected != 200:
        assert response.json()["detail"]
        assert worker.received == []
        return
    FloorState.model_validate(response.json())
    room, authorization, command = worker.received[-1]
    assert room == room_name(live_meeting)
    # a token for this node and this call, signed with the grant key: no shared secret
    admin = jwt.decode(
        authorization.removeprefix("Bearer "),
        serialization.load_pem_public_key(public_pem(client).encode()),  # type: ignore[arg-type]
        algorithms=["EdDSA"],
        audience="confbridge-sfu-admin",
    )
    assert (admin["sub"], admin["method"], admin["path"]) == (
        NODE_ID,
        "POST",
        f"/rooms/{room}/floor",
    )
    assert admin["exp"] - admin["iat"] == 60
    assert command.action == action
    expected_site = site_id if action not in ("take", "mute_all") else None
    if kind == "terminal" and action in ("raise_hand", "lower_hand"):
        expected_site = sites[name].id  # a hall's own hand by default
    assert command.site_id == expected_site
    assert command.by.startswith(f"{kind}:")


def test_floor_action_is_audited(
    client: TestClient,
    live_meeting: int,
    secretariat: Headers,
    sites: dict[str, Site],
    session: Session,
) -> None:
    response = floor(client, live_meeting, secretariat, "give", sites["p1"].id)
    assert response.status_code == 200
    assert response.json()["speaker_site_id"] == sites["p1"].id
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "floor_give"))
    assert entry is not None
    assert (entry.actor, entry.entity, entry.entity_id) == (
        "user:vanphong",
        "occurrence",
        live_meeting,
    )
    assert entry.detail["site_id"] == sites["p1"].id


@pytest.mark.parametrize(
    ("action", "target", "message"),
    [
        ("give", None, "give needs a site_id"),
        ("mute", "dept", "not invited"),
        ("unmute", 424242, "not invited"),
        ("raise_hand", None, "raise_hand needs a site_id"),
    ],
)
def test_floor_bad_site_is_unprocessable(
    action: str,
    target: str | int | None,
    message: str,
    client: TestClient,
    live_meeting: int,
    secretariat: Headers,
    sites: dict[str, Site],
    worker: StubWorker,
) -> None:
    site_id = sites[target].id if isinstance(target, str) else target
    response = floor(client, live_meeting, secretariat, action, site_id)
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert worker.received == []


def test_floor_unknown_action_is_unprocessable(
    client: TestClient, live_meeting: int, secretariat: Headers
) -> None:
    response = floor(client, live_meeting, secretariat, "shout", None)
    assert response.status_code == 422


def test_floor_room_not_open_is_a_conflict(
    client: TestClient,
    database: Database,
    meeting: Callable[..., int],
    secretariat: Headers,
    sites: dict[str, Site],
    worker: StubWorker,
) -> None:
    occurrence_id = meeting(now() + timedelta(hours=2))
    # nobody joined yet: the room is placed nowhere, no worker is asked
    response = floor(client, occurrence_id, secretariat, "give", sites["p1"].id)
    assert response.status_code == 409
    assert response.json()["detail"] == "the meeting room is not open yet"
    assert worker.received == []
    # placed, but the worker has not opened it (no session yet)
    place(database, occurrence_id)
    response = floor(client, occurrence_id, secretariat, "give", sites["p1"].id)
    assert response.status_code == 409
    assert response.json()["detail"] == "the meeting room is not open yet"
    assert len(worker.received) == 1


def test_floor_cancelled_meeting_is_a_conflict(
    client: TestClient, live_meeting: int, secretariat: Headers, worker: StubWorker
) -> None:
    client.patch(
        f"/api/v1/occurrences/{live_meeting}", json={"status": "cancelled"}, headers=secretariat
    )
    response = floor(client, live_meeting, secretariat, "mute_all", None)
    assert response.status_code == 409
    assert worker.received == []


def test_floor_worker_down_is_unavailable(
    client: TestClient,
    database: Database,
    live_meeting: int,
    secretariat: Headers,
    sites: dict[str, Site],
    session: Session,
) -> None:
    # the node now registers an admin address where nothing answers
    register(database, internal_url=f"http://127.0.0.1:{free_port()}")
    response = floor(client, live_meeting, secretariat, "give", sites["p1"].id)
    assert response.status_code == 503
    assert "unreachable" in response.json()["detail"]
    assert (
        session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "floor_give")
        )
        == 0
    )


# --- events from workers ------------------------------------------------------------------------


def event(occurrence_id: int, kind: EventType = EventType.joined, **changes: Any) -> SfuEvent:
    values: dict[str, Any] = {
        "id": f"evt-{uuid.uuid4().hex}",
        "type": kind,
        "at": now(),
        "node_id": NODE_ID,
        "room": room_name(occurrence_id),
        "occurrence_id": occurrence_id,
        "site_id": 3,
        "peer_id": "peer-1",
        "direction": "ingest",
    }
    values.update(changes)
    return SfuEvent.model_validate(values)


def batch(*events: SfuEvent) -> dict[str, Any]:
    return {"events": [json.loads(e.model_dump_json()) for e in events]}


def stored_count(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(SfuEventRecord)) or 0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {NODE_SECRET}"},  # the shared secret is for metrics only
        {"Authorization": "Bearer cbn_not-an-enrolled-key"},
    ],
    ids=["none", "wrong", "shared-secret", "unknown-key"],
)
def test_events_need_a_node_key(client: TestClient, headers: Headers, database: Database) -> None:
    response = client.post("/api/v1/sfu/events", json=batch(event(1)), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/api/v1/sfu/grant-key", headers=headers).status_code == 401
    assert stored_count(database) == 0


def test_events_need_the_node_key_not_basic(
    client: TestClient, node: Headers, database: Database
) -> None:
    basic = {"Authorization": node["Authorization"].replace("Bearer", "Basic")}
    response = client.post("/api/v1/sfu/events", json=batch(event(1)), headers=basic)
    assert response.status_code == 401
    assert stored_count(database) == 0


def test_events_refuse_a_user_token(
    client: TestClient, secretariat: Headers, database: Database
) -> None:
    response = client.post("/api/v1/sfu/events", json=batch(event(1)), headers=secretariat)
    assert response.status_code == 401
    assert stored_count(database) == 0


def test_events_batch_stored_then_duplicates(
    client: TestClient,
    meeting: Callable[..., int],
    make_user: Callable[..., Headers],
    node: Headers,
    database: Database,
) -> None:
    occurrence_id = meeting(now())
    place(database, occurrence_id)
    stats = {
        "rtt_ms": 21.5,
        "loss_ratio": 0.01,
        "jitter_ms": 3.0,
        "bitrate_kbps": 900,
        "packets": 10,
    }
    events = [
        event(occurrence_id, at=now() - timedelta(seconds=3)),
        event(occurrence_id, EventType.stats, at=now() - timedelta(seconds=2), stats=stats),
        event(
            occurrence_id, EventType.left, at=now() - timedelta(seconds=1), detail={"reason": "bye"}
        ),
    ]
    first = client.post("/api/v1/sfu/events", json=batch(*events), headers=node)
    assert first.status_code == 200, first.text
    assert first.json() == {"stored": 3, "duplicates": 0}
    again = client.post("/api/v1/sfu/events", json=batch(*events), headers=node)
    assert again.json() == {"stored": 0, "duplicates": 3}

    viewer = make_user(Role.viewer)
    listed = client.get(f"/api/v1/occurrences/{occurrence_id}/events", headers=viewer)
    assert listed.status_code == 200
    page = listed.json()
    assert page["total"] == 3
    assert [e["id"] for e in page["items"]] == [e.id for e in events]
    assert page["items"][1]["stats"]["rtt_ms"] == 21.5
    assert page["items"][2]["detail"] == {"reason": "bye"}
    only_stats = client.get(
        f"/api/v1/occurrences/{occurrence_id}/events?type=stats&limit=5", headers=viewer
    ).json()
    assert [e["type"] for e in only_stats["items"]] == ["stats"]


@pytest.fixture
def held(meeting: Callable[..., int], database: Database) -> int:
    """An occurrence whose room was placed on node-a."""
    occurrence_id = meeting(now())
    place(database, occurrence_id)
    return occurrence_id


def test_events_duplicate_within_one_batch_stored_once(
    client: TestClient, database: Database, node: Headers, held: int
) -> None:
    one = event(held)
    response = client.post("/api/v1/sfu/events", json=batch(one, one), headers=node)
    assert response.json() == {"stored": 1, "duplicates": 1}
    assert stored_count(database) == 1


def test_events_for_rooms_the_node_never_held_are_refused_and_logged(
    client: TestClient,
    database: Database,
    node: Headers,
    held: int,
    meeting: Callable[..., int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A node cannot rewrite the attendance of a meeting another node held (or of one that
    never met): the whole batch is refused, and the node sets the bad events apart."""
    elsewhere = meeting(now() - timedelta(days=3))
    enrol_node(database, "node-b")
    let_node_hold(database, "node-b", elsewhere)
    for occurrence_id in (elsewhere, 777_777):
        response = client.post(
            "/api/v1/sfu/events", json=batch(event(held), event(occurrence_id)), headers=node
        )
        assert response.status_code == 403, response.text
        assert str(occurrence_id) in response.json()["detail"]
    assert "never held" in caplog.text
    assert stored_count(database) == 0


def test_events_in_another_nodes_name_are_refused(
    client: TestClient, database: Database, node: Headers, held: int
) -> None:
    enrol_node(database, "node-b")
    let_node_hold(database, "node-b", held)
    forged = event(held, node_id="node-b")
    response = client.post("/api/v1/sfu/events", json=batch(forged), headers=node)
    assert response.status_code == 403 and "node-b" in response.json()["detail"]
    mislabelled = event(held, room=f"occ-{held + 1}")
    response = client.post("/api/v1/sfu/events", json=batch(mislabelled), headers=node)
    assert response.status_code == 422
    assert stored_count(database) == 0


def test_events_of_a_room_that_moved_away_are_still_accepted(
    client: TestClient, database: Database, node: Headers, held: int
) -> None:
    """A node that held a room keeps reporting on it (its spool delivers late) after the room
    moved to another node."""
    other = enrol_node(database, "node-b")
    with database.session() as session:
        node_service.heartbeat(
            session=session,
            beat=NodeHeartbeat(
                node_id="node-b",
                public_url="http://127.0.0.1:9",
                internal_url="http://127.0.0.1:9",
                capacity_peers=10,
            ),
            now=utcnow(),
        )
        moved = session.get(SfuNode, NODE_ID)
        assert moved is not None
        moved.down_since = utcnow()
        server = placement.place_room(session=session, occurrence_id=held, now=utcnow())
        assert server.node_id == "node-b"
        session.commit()
    late = client.post("/api/v1/sfu/events", json=batch(event(held)), headers=node)
    assert late.status_code == 200 and late.json()["stored"] == 1
    now_there = event(held, node_id="node-b", peer_id="peer-2")
    assert (
        client.post("/api/v1/sfu/events", json=batch(now_there), headers=other).status_code == 200
    )


def test_events_bad_input_is_unprocessable(
    client: TestClient, database: Database, node: Headers
) -> None:
    bad = batch(event(1))
    bad["events"][0]["occurrence_id"] = 2**70
    assert client.post("/api/v1/sfu/events", json=bad, headers=node).status_code == 422
    bad_type = batch(event(1))
    bad_type["events"][0]["type"] = "exploded"
    assert client.post("/api/v1/sfu/events", json=bad_type, headers=node).status_code == 422
    too_many = {"events": [batch(event(1))["events"][0]] * 1001}
    assert client.post("/api/v1/sfu/events", json=too_many, headers=node).status_code == 422
    assert stored_count(database) == 0


def test_events_nan_token_is_refused_and_a_workers_nan_arrives_as_null(
    client: TestClient, secretariat: Headers, database: Database, node: Headers, held: int
) -> None:
    body = batch(event(held, EventType.stats, stats={"rtt_ms": 1.0}))
    raw = json.dumps(body).replace('"rtt_ms": 1.0', '"rtt_ms": NaN')
    response = client.post(
        "/api/v1/sfu/events",
        content=raw,
        headers={**node, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text  # NaN is not JSON
    assert stored_count(database) == 0
    # A worker writes its events with pydantic, which turns NaN into null.
    stats = PeerStats(rtt_ms=float("nan"), packets=3)
    sent = SfuEvent.model_validate({**body["events"][0], "stats": None}).model_copy(
        update={"stats": stats}
    )
    response = client.post(
        "/api/v1/sfu/events",
        content='{"events": [' + sent.model_dump_json() + "]}",
        headers={**node, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    listed = client.get(f"/api/v1/occurrences/{held}/events", headers=secretariat).json()
    assert listed["items"][0]["stats"]["rtt_ms"] is None


def test_events_racing_deliveries_store_each_event_once(
    app: FastAPI, serve: Callable[..., ServerThread], database: Database, node: Headers, held: int
) -> None:
    """A worker retrying while its first delivery is still in flight: same batch, in parallel."""
    server = serve(app)
    events = batch(*(event(held, EventType.stats, stats={"packets": i}) for i in range(50)))
    contenders = 6
    barrier = threading.Barrier(contenders)

    def deliver(_: int) -> dict[str, int]:
        with httpx.Client(base_url=server.url, headers=node, timeout=60) as http:
            barrier.wait()
            response = http.post("/api/v1/sfu/events", json=events)
            assert response.status_code == 200, response.text
            return response.json()

    with ThreadPoolExecutor(contenders) as pool:
        acks = list(pool.map(deliver, range(contenders)))
    assert sum(a["stored"] for a in acks) == 50
    assert sum(a["duplicates"] for a in acks) == 50 * (contenders - 1)
    assert stored_count(database) == 50


# (who, action, expected status): voice activation is the chair's, like give and take
VOICE_MATRIX = [
    ("terminal:hq", "voice_on", 200),
    ("terminal:hq", "voice_off", 200),
    ("terminal:p1", "voice_on", 403),
    ("terminal:p1", "voice_off", 403),
    ("terminal:dept", "voice_on", 403),
    ("user:secretariat", "voice_on", 200),
    ("user:secretariat", "voice_off", 200),
    ("user:admin", "voice_on", 200),
    ("user:viewer", "voice_on", 403),
    ("user:it", "voice_off", 403),
]


@pytest.mark.parametrize(("who", "action", "expected"), VOICE_MATRIX)
def test_floor_voice_activation_permissions(
    who: str,
    action: str,
    expected: int,
    client: TestClient,
    live_meeting: int,
    terminal: Callable[[str], Headers],
    make_user: Callable[..., Headers],
    sites: dict[str, Site],
    worker: StubWorker,
) -> None:
    kind, name = who.split(":")
    headers = terminal(name) if kind == "terminal" else make_user(Role(name))
    # a site in the request is ignored: the mode is the room's, not a site's
    response = floor(client, live_meeting, headers, action, sites["p1"].id)
    assert response.status_code == expected, response.text
    if expected != 200:
        assert response.json()["detail"]
        assert worker.received == []
        return
    room, _authorization, command = worker.received[-1]
    assert room == room_name(live_meeting)
    assert command.action == action and command.site_id is None


def test_join_as_guest_only_for_sip_guest_sites(
    session: Session, meeting: Callable[..., int], sites: dict[str, Site], settings: Settings
) -> None:
    """The SIP gateway joins a guest without a booking; nobody else joins uninvited."""
    occurrence_id = meeting(now())
    guest = site_service.sip_guest_site(
        session=session, caller_uri="sip:minh@partner.vn", display_name="Minh"
    )
    session.commit()
    signer = signing.signer_for(settings.grant_key_path)

    def attempt(site: Site, as_guest: bool) -> Any:
        return bridge_service.join(
            session=session,
            occurrence_id=occurrence_id,
            site=site,
            settings=settings.sfu,
            signer=signer,
            now=now(),
            tz=settings.meetings.default_tz,
            as_guest=as_guest,
        )

    info = attempt(guest, as_guest=True)
    assert info.role == PeerRole.site
    claims = jwt.decode(info.token, options={"verify_signature": False})
    assert claims["site_id"] == guest.id
    with pytest.raises(Forbidden, match="not invited"):
        attempt(guest, as_guest=False)  # a terminal's join
    uninvited = session.get(Site, sites["dept"].id)
    assert uninvited is not None
    with pytest.raises(Forbidden, match="not invited"):
        attempt(uninvited, as_guest=True)  # only guest sites join as guests
