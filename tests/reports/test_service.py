"""Report inputs: periods, units by name, the unit tree, and the targets' settings."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import get_args

import pytest
from sqlalchemy.orm import Session

from confbridge.errors import Invalid
from confbridge.meetings.models import MeetingKind
from confbridge.reports import service as report_service
from confbridge.reports.schemas import GroupBy
from confbridge.settings import ConfigError, KindName, ReportSettings, load_settings
from confbridge.sites import service as site_service
from confbridge.sites.models import Unit, UnitKind

TZ = "Asia/Ho_Chi_Minh"


def test_period_is_whole_local_days() -> None:
    period = report_service.parse_period("2026-01-01", "2026-01-31", tz=TZ, today=date(2026, 5, 1))
    assert period.from_at == datetime(2025, 12, 31, 17, tzinfo=UTC)
    assert period.to_at == datetime(2026, 1, 31, 17, tzinfo=UTC)
    assert period.contains(date(2026, 1, 31)) and not period.contains(date(2026, 2, 1))


def test_period_defaults_to_this_year_until_today() -> None:
    period = report_service.parse_period(None, None, tz=TZ, today=date(2026, 5, 1))
    assert (period.from_date, period.to_date) == (date(2026, 1, 1), date(2026, 5, 1))


def test_period_one_day_is_allowed_and_reversed_is_not() -> None:
    day = report_service.parse_period("2026-02-02", "2026-02-02", tz=TZ, today=date(2026, 5, 1))
    assert day.from_date == day.to_date
    with pytest.raises(Invalid, match="is after"):
        report_service.parse_period("2026-02-03", "2026-02-02", tz=TZ, today=date(2026, 5, 1))


def test_group_by_accepts_any_case() -> None:
    assert report_service.parse_group_by(" Quarter ") is GroupBy.quarter


def test_find_unit_by_name_code_or_id(session: Session, province: Unit) -> None:
    assert report_service.find_unit(session=session, query="tinh thu").id == province.id
    assert report_service.find_unit(session=session, query="Thử").id == province.id
    assert report_service.find_unit(session=session, query=str(province.id)).id == province.id
    assert report_service.find_unit(session=session, query="phường  một").name == "Phường Một"
    with pytest.raises(Invalid, match="no unit named 'Atlantis'"):
        report_service.find_unit(session=session, query="Atlantis")


def test_unit_tree_branches(session: Session, province: Unit) -> None:
    tree = report_service.UnitTree.load(session)
    ward = report_service.find_unit(session=session, query="Phường Hai")
    assert tree.branch_of(ward.id, None) == province.id
    assert tree.branch_of(ward.id, province.id) == ward.id
    assert tree.branch_of(province.id, province.id) == province.id
    assert tree.branch_of(province.id, ward.id) is None
    assert len(tree.communes(tree.subtree(province.id))) == 2


def test_settings_kinds_match_the_meeting_kinds() -> None:
    assert set(get_args(KindName)) == {k.value for k in MeetingKind}


def test_settings_default_targets() -> None:
    targets = ReportSettings().targets
    assert targets["online_ratio"].kinds == ["so_ket", "tong_ket", "tap_huan"]
    assert targets["online_ratio"].min_ratio == 0.8
    assert targets["briefing_online_ratio"].min_ratio == 0.3
    assert targets["communes_connected"].min_ratio == 1.0


def test_settings_bad_target_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFBRIDGE_REPORTS__TARGETS__ONLINE_RATIO__MIN_RATIO", "1.5")
    with pytest.raises(ConfigError, match=r"reports\.targets\.online_ratio\.min_ratio"):
        load_settings()
    monkeypatch.setenv("CONFBRIDGE_REPORTS__TARGETS__ONLINE_RATIO__MIN_RATIO", "0.9")
    assert load_settings().reports.targets["online_ratio"].min_ratio == 0.9


def test_unit_tree_orders_children_in_vietnamese(session: Session, province: Unit) -> None:
    for name in ("Xã Đại Yên", "Xã Hùng Sơn", "Xã Hồng Phong", "Xã Dương Liễu"):
        site_service.create_unit(
            session=session, name=name, kind=UnitKind.commune, parent_id=province.id
        )
    session.commit()
    tree = report_service.UnitTree.load(session)
    communes = [tree.name[i] for i in tree.children[province.id] if i > 0]
    xa = [name for name in communes if name.startswith("Xã")]
    assert xa == ["Xã Dương Liễu", "Xã Đại Yên", "Xã Hồng Phong", "Xã Hùng Sơn"]


def test_online_ratio_takes_the_targets_of_the_reports_province(session: Session) -> None:
    own = {
        "online_ratio": {
            "metric": "online_ratio",
            "kinds": ["giao_ban"],
            "min_ratio": 0.9,
            "label_vi": "Giao ban trực tuyến (tỉnh B)",
            "label_en": "Online briefings (province B)",
        }
    }
    settings = ReportSettings(province_targets={"B": own})
    province_a = site_service.create_unit(
        session=session, name="Tỉnh A", kind=UnitKind.province, code="A"
    )
    province_b = site_service.create_unit(
        session=session, name="Tỉnh B", kind=UnitKind.province, code="B"
    )
    ward_b = site_service.create_unit(
        session=session, name="Phường B", kind=UnitKind.ward, parent_id=province_b.id
    )
    period = report_service.parse_period("2026-01-01", "2026-01-31", tz=TZ, today=date(2026, 5, 1))
    now = datetime(2026, 5, 1, tzinfo=UTC)

    def targets(unit: Unit | None) -> dict[str, float]:
        report = report_service.online_ratio(
            session=session,
            period=period,
            unit=unit,
            group_by=GroupBy.month,
            settings=settings,
            now=now,
        )
        return {t.key: t.target for t in report.total.targets}

    assert targets(ward_b) == {"online_ratio": 0.9}
    assert targets(province_b) == {"online_ratio": 0.9}
    assert targets(province_a) == {k: t.min_ratio for k, t in settings.targets.items()}
    assert targets(None) == {k: t.min_ratio for k, t in settings.targets.items()}
