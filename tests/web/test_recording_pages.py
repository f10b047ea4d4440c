"""The console's record button for a series that is never recorded, and the recording pages'
answers to what does not exist (the recording itself is tested in tests/recordings)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from confbridge.auth.models import Role
from confbridge.meetings.models import RecordPolicy
from confbridge.sites.models import Site
from tests.support.factories import make_occurrences
from tests.support.web import csrf_of


def test_recording_pages_console_refuses_a_series_never_recorded(
    web: Callable[..., TestClient], session: Session, sites: dict[str, Site]
) -> None:
    occurrence = make_occurrences(session, sites, count=1)[0]
    occurrence.series.record = RecordPolicy.never.value
    session.commit()
    client = web(Role.secretariat)
    page = client.get(f"/occurrences/{occurrence.id}/console")
    assert page.status_code == 200
    assert 'id="recording-button"' in page.text and "Bắt đầu ghi hình" in page.text
    assert 'data-refused="true" disabled' in page.text
    assert "không được ghi hình" in page.text
    csrf = csrf_of(page.text)
    answer = client.post(
        f"/occurrences/{occurrence.id}/recording",
        data={"csrf_token": csrf, "action": "start"},
        headers={"Accept": "application/json", "X-CSRF-Token": csrf},
    )
    assert answer.status_code == 409
    assert answer.json()["detail"] == (
        "Chuỗi cuộc họp này không được ghi hình (thiết lập “không bao giờ”)."
    )
    unknown = client.post(
        f"/occurrences/{occurrence.id}/recording",
        data={"csrf_token": csrf, "action": "pause"},
        headers={"Accept": "application/json", "X-CSRF-Token": csrf},
    )
    assert unknown.status_code == 422 and unknown.json()["detail"]
    state = client.get(f"/occurrences/{occurrence.id}/recording")
    assert state.json() == {"recording": False, "recording_id": None}


def test_recording_pages_answer_404_for_what_does_not_exist(
    web: Callable[..., TestClient], session: Session, sites: dict[str, Site]
) -> None:
    occurrence = make_occurrences(session, sites, count=1)[0]
    session.commit()
    client = web(Role.viewer)
    base = f"/occurrences/{occurrence.id}/recordings/{'0' * 32}"
    for path in (f"{base}/play", f"{base}/download", f"{base}/chapters.vtt"):
        assert client.get(path).status_code == 404, path
    assert client.get(f"/occurrences/999999/recordings/{'0' * 32}/play").status_code == 404
    # a viewer does not run the console
    assert client.get(f"/occurrences/{occurrence.id}/recording").status_code == 403
