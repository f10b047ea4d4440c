"""Report endpoints: bad input gets 422 with a clear message, an empty period still reports."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from confbridge.sites.models import Unit

Headers = dict[str, str]
RATIO = "/api/v1/reports/online-ratio"
ATTENDANCE = "/api/v1/reports/attendance"


@pytest.mark.parametrize("url", [RATIO, ATTENDANCE])
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2026-12-31", "to": "2026-01-01"}, "from: 2026-12-31 is after to: 2026-01-01"),
        ({"from": "2026-13-01"}, "from: '2026-13-01' is not a date like 2026-01-31"),
        ({"to": "yesterday"}, "to: 'yesterday' is not a date like 2026-01-31"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "the period may span at most three years"),
        ({"unit_id": "987654"}, "unit_id: unit 987654 does not exist"),
        ({"format": "pdf"}, "format: unknown value 'pdf' (one of json, csv, xlsx)"),
    ],
)
def test_reports_bad_input_is_unprocessable(
    client: TestClient, secretariat: Headers, url: str, params: dict[str, str], message: str
) -> None:
    response = client.get(url, params=params, headers=secretariat)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == message


def test_reports_unknown_group_is_unprocessable(client: TestClient, secretariat: Headers) -> None:
    response = client.get(RATIO, params={"group_by": "week"}, headers=secretariat)
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "group_by: unknown value 'week' (one of month, quarter, unit, kind)"
    )


def test_reports_malformed_unit_id_is_unprocessable(
    client: TestClient, secretariat: Headers
) -> None:
    response = client.get(RATIO, params={"unit_id": "abc"}, headers=secretariat)
    assert response.status_code == 422


def test_reports_need_a_user(client: TestClient, make_user: Callable[..., Headers]) -> None:
    assert client.get(RATIO).status_code == 401
    assert client.get(ATTENDANCE, headers=make_user("viewer")).status_code == 200


def test_reports_empty_period_has_no_actual(
    client: TestClient, secretariat: Headers, province: Unit
) -> None:
    params = {"from": "2026-01-01", "to": "2026-03-31", "unit_id": province.id}
    report = client.get(RATIO, params=params, headers=secretariat).json()
    assert [r["group"] for r in report["rows"]] == ["2026-01", "2026-02", "2026-03"]
    total = report["total"]
    assert (total["held"], total["ratio"], total["communes"], total["communes_connected"]) == (
        0,
        None,
        2,
        0,
    )
    by_key = {t["key"]: t for t in total["targets"]}
    assert by_key["online_ratio"]["met"] is None
    assert by_key["communes_connected"]["actual"] == 0.0
    assert by_key["communes_connected"]["met"] is False
    by_unit = client.get(RATIO, params={**params, "group_by": "unit"}, headers=secretariat).json()
    labels = [r["label"] for r in by_unit["rows"]]
    assert labels == ["Tỉnh Thử", "Phường Hai", "Phường Một", "Sở Thông tin"]
    attendance = client.get(ATTENDANCE, params=params, headers=secretariat).json()
    assert (attendance["occurrences"], attendance["rows"], attendance["rate"]) == (0, [], None)
    xlsx = client.get(ATTENDANCE, params={**params, "format": "xlsx"}, headers=secretariat)
    assert xlsx.status_code == 200 and xlsx.content.startswith(b"PK")


def test_reports_default_period_is_this_year(client: TestClient, secretariat: Headers) -> None:
    report = client.get(RATIO, headers=secretariat).json()
    assert report["from_date"].endswith("-01-01")
    assert report["from_date"][:4] == report["to_date"][:4]
