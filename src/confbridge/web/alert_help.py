"""What IT staff do about an alert: a short remedy for its kind and links to what it concerns
(the site and its terminal, the media server, the meeting)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from confbridge.alerts.models import Alert
from confbridge.alerts.service import AlertKind
from confbridge.web.labels import N_


@dataclass(frozen=True)
class AlertLink:
    href: str
    label: str  # a catalogue message id
    values: dict[str, str] = field(default_factory=dict)  # its %(name)s


@dataclass(frozen=True)
class AlertHelp:
    remedy: str  # translated
    links: list[AlertLink]


REMEDIES: dict[str, str] = {
    AlertKind.node_down.value: N_(
        "Check that the server is switched on and its service runs "
        "(systemctl status confbridge-sfu). New meetings go to the other servers meanwhile."
    ),
    AlertKind.spool_growing.value: N_(
        "The server cannot report to the control plane: check the network between them and "
        "the control plane's log. Nothing is lost while the queue grows."
    ),
    AlertKind.terminal_offline.value: N_(
        "Call the hall: the terminal must be switched on and on the network. "
        "It joins the meeting by itself once it is back."
    ),
    AlertKind.link_quality.value: N_(
        "Call the hall: stop other downloads on its network or move to the wired network. "
        "Meanwhile it receives the small picture."
    ),
    AlertKind.occurrence_unplanned.value: N_(
        "Open the series and move the meeting to a free time, or accept that it is skipped."
    ),
    AlertKind.room_system_unreachable.value: N_(
        "Check that the room system is switched on and registered, and that its address on "
        "the site page is right."
    ),
    AlertKind.recording_failed.value: N_(
        "Free space in the media server's recordings directory, then start the recording "
        "again from the console. What was recorded before is kept."
    ),
}
NO_TERMINAL_REMEDY = N_(
    "The site has no terminal: pair one (confbridge terminals create --site %(site)s) "
    "or invite the site in person."
)
GENERIC_REMEDY = N_("Look at the control plane's log for this alert.")


def _no_terminal(alert: Alert) -> bool:
    return bool((alert.details or {}).get("no_terminal"))


def remedy_of(alert: Alert, translate: Callable[[str], str]) -> str:
    """The remedy for `alert`, translated."""
    if alert.kind == AlertKind.terminal_offline.value and _no_terminal(alert):
        return translate(NO_TERMINAL_REMEDY) % {"site": alert.site_id}
    return translate(REMEDIES.get(alert.kind, GENERIC_REMEDY))


def links_of(alert: Alert) -> list[AlertLink]:
    """Where to look: the site (and its terminals), the media server, the meeting."""
    links = []
    if alert.site_id:
        links.append(AlertLink(f"/sites/{alert.site_id}", N_("Site")))
    if alert.node_id:
        links.append(
            AlertLink(f"#node-{alert.node_id}", N_("Server %(node)s"), {"node": alert.node_id})
        )
    if alert.occurrence_id:
        links.append(AlertLink(f"/occurrences/{alert.occurrence_id}", N_("Meeting")))
    series_id = (alert.details or {}).get("series_id")
    if alert.kind == AlertKind.occurrence_unplanned.value and isinstance(series_id, int):
        links.append(AlertLink(f"/series/{series_id}/edit#unplanned", N_("Series")))
    return links


def help_for(alert: Alert, translate: Callable[[str], str]) -> AlertHelp:
    """The remedy (translated) and the links of one alert."""
    return AlertHelp(remedy_of(alert, translate), links_of(alert))
