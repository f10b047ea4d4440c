"""Every alert on the IT page says what to do and links to what it concerns."""

from __future__ import annotations

from confbridge.alerts.models import Alert
from confbridge.alerts.service import AlertKind
from confbridge.web import i18n
from confbridge.web.alert_help import GENERIC_REMEDY, REMEDIES, help_for

VI = i18n.translations("vi").gettext


def _alert(kind: AlertKind, **values: object) -> Alert:
    return Alert(
        kind=kind.value, severity="warning", subject="x", message="", message_en="", **values
    )


def test_alert_help_every_kind_has_its_own_translated_remedy() -> None:
    assert set(REMEDIES) == {kind.value for kind in AlertKind}
    for kind in AlertKind:
        remedy = help_for(_alert(kind, details={}), VI).remedy
        assert remedy and remedy != VI(GENERIC_REMEDY)
        assert remedy != REMEDIES[kind.value], f"{kind}: not translated"


def test_alert_help_links_to_the_site_the_node_and_the_meeting() -> None:
    offline = help_for(
        _alert(AlertKind.terminal_offline, site_id=7, occurrence_id=3, details={}), VI
    )
    assert [link.href for link in offline.links] == ["/sites/7", "/occurrences/3"]
    down = help_for(_alert(AlertKind.node_down, node_id="hn-1", details={}), VI)
    assert [link.href for link in down.links] == ["#node-hn-1"]
    assert down.links[0].values == {"node": "hn-1"}
    unplanned = help_for(_alert(AlertKind.occurrence_unplanned, details={"series_id": 12}), VI)
    assert [link.href for link in unplanned.links] == ["/series/12/edit#unplanned"]


def test_alert_help_a_site_without_terminal_is_told_to_pair_one() -> None:
    never = help_for(
        _alert(AlertKind.terminal_offline, site_id=7, details={"no_terminal": True}), VI
    )
    assert "confbridge terminals create --site 7" in never.remedy
    assert "mất kết nối" not in never.remedy
