"""Room systems invited to a meeting that starts soon are pinged; one that does not answer is
alerted before the start, and the alert resolves when it answers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from confbridge.alerts import service as alert_service
from confbridge.alerts.service import AlertKind
from confbridge.db import Database
from confbridge.sip import readiness
from confbridge.sites.models import Site
from tests.support.factories import book_occurrence, make_settings


def _open(database: Database) -> dict[int | None, str]:
    with database.session() as session:
        rows, _ = alert_service.list_(
            session=session,
            open_only=True,
            kind=AlertKind.room_system_unreachable,
            limit=50,
            offset=0,
        )
        return {alert.site_id: alert.message_en for alert in rows}


async def test_readiness_pings_invited_room_systems_and_alerts_the_silent_one(
    database: Database, sites: dict[str, Site], tmp_path: Path
) -> None:
    settings = make_settings(database.settings.database_url or "", tmp_path)
    start = readiness.utcnow().replace(second=0, microsecond=0) + timedelta(minutes=20)
    occurrence_id = book_occurrence(database, settings, sites, start, invited=("p1", "p2"))
    with database.session() as session:
        for key in ("p1", "dept"):  # dept has a room system but is not invited
            site = session.get(Site, sites[key].id)
            assert site is not None
            site.sip_uri = f"sip:phonghop@{key}.example.vn"
        session.commit()
    answering: set[str] = set()
    pinged: list[str] = []

    async def ping(uri: str) -> bool:
        pinged.append(uri)
        return uri in answering

    expected = await readiness.check_once(database, settings, ping)
    assert pinged == ["sip:phonghop@p1.example.vn"]  # p2 and hq have none; dept not invited
    assert [(e.invited.occurrence_id, e.invited.site_id) for e in expected] == [
        (occurrence_id, sites["p1"].id)
    ]
    alerts = _open(database)
    assert list(alerts) == [sites["p1"].id]
    assert "sip:phonghop@p1.example.vn" in alerts[sites["p1"].id]
    answering.add("sip:phonghop@p1.example.vn")
    await readiness.check_once(database, settings, ping)
    assert _open(database) == {}
