"""Words for the domain's codes (kinds, modes, states), as catalogue message ids."""

from __future__ import annotations

from collections.abc import Callable


def N_(message: str) -> str:
    """Mark `message` for the catalogue; it is translated where it is shown."""
    return message


KINDS = {
    "giao_ban": N_("Briefing"),
    "so_ket": N_("Mid-term review"),
    "tong_ket": N_("Year-end review"),
    "tap_huan": N_("Training"),
    "chuyen_de": N_("Thematic meeting"),
    "khac": N_("Other meeting"),
}
MODES = {
    "online": N_("Online"),
    "in_person": N_("In person"),
    "hybrid": N_("Hybrid"),
}
OCCURRENCE_STATUSES = {
    "scheduled": N_("Takes place"),
    "cancelled": N_("Cancelled"),
}
SITE_STATES = {
    "not_joined": N_("Not yet joined"),
    "joined": N_("Joined"),
    "left": N_("Left"),
    "dropped": N_("Connection lost"),
}
QUALITIES = {
    "good": N_("Good"),
    "fair": N_("Fair"),
    "poor": N_("Poor"),
}
FLOOR_ACTIONS = {
    "give": N_("Give the floor"),
    "take": N_("Take the floor back"),
    "mute": N_("Mute"),
    "unmute": N_("Unmute"),
    "mute_all": N_("Mute all"),
    "stop_content": N_("Stop the presentation"),
}
UNIT_KINDS = {
    "province": N_("Province"),
    "city": N_("City"),
    "district": N_("District"),
    "commune": N_("Commune"),
    "ward": N_("Ward"),
    "special_zone": N_("Special zone"),
    "department": N_("Department"),
    "office": N_("Committee office"),
    "guest": N_("Guests (SIP)"),
}


def translated(labels: dict[str, str], gettext: Callable[[str], str]) -> dict[str, str]:
    return {code: gettext(message) for code, message in labels.items()}
