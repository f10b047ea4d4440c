"""The contract between the SIP gateway (`confbridge sip`, signalling) and the SFU worker that
holds a room (media): a SIP call's media is a *leg* of plain RTP (RTP/AVP, or RTP/SAVP with
SDES keys) that the worker terminates next to the room, so video is forwarded without decoding.

The gateway answers SIP; the worker opens and closes the RTP sockets:

- `POST /sip-legs` (`SipLegOpen`) → `SipLegOpened`: for a call that came in, the caller's SDP
  offer gives the worker's SDP answer; for a call the bridge makes, the worker's SDP offer.
  A leg opened with `lobby=True` is in no room: it hears only DTMF (the PIN), nothing of the
  meeting reaches it and nothing of it reaches the meeting.
- `POST /sip-legs/{leg_id}/answer` (`SipLegAnswer`): the far end's SDP answer (calls out).
- `POST /sip-legs/{leg_id}/admit` (`SipLegAdmit`): the lobby caller gave the PIN; the leg
  joins the room under the join grant given (the grant names the room and the site).
- `POST /sip-legs/{leg_id}/dtmf` (`SipLegDtmf`): digits the gateway received as SIP INFO.
- `GET /sip-legs/{leg_id}/events`: newline-delimited `SipLegEvent`s while the leg lives (DTMF
  heard in RTP, first media, the leg closed by the worker), then the stream ends.
- `DELETE /sip-legs/{leg_id}` (`SipLegClose`): the call ended; the reason goes to attendance.
- `GET /sip-legs` → `SipLegList`: the legs open now (IT staff's page of current SIP calls).

Every call carries the control plane's admin token for the worker (method and path), like the
floor commands: a worker opens a leg only for the control plane's side.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

SIP_LEGS_PATH = "/sip-legs"
MAX_SIP_SDP_BYTES = 16 * 1024
DTMF_DIGITS = "0123456789*#ABCD"


def sip_leg_path(leg_id: str, action: str = "") -> str:
    """`/sip-legs/{leg_id}` or `/sip-legs/{leg_id}/{action}`."""
    return f"{SIP_LEGS_PATH}/{leg_id}" + (f"/{action}" if action else "")


class SipLegOpen(BaseModel):
    """Gateway → worker: open the media side of a SIP call."""

    call_id: str = Field(min_length=1, max_length=200, description="the SIP Call-ID, for logs")
    remote_uri: str = Field(max_length=300, description="the far end (From or Request-URI)")
    display_name: str = Field(default="", max_length=100)
    offer: str | None = Field(
        default=None,
        max_length=MAX_SIP_SDP_BYTES,
        description="the far end's SDP offer (call in); None: the worker offers (call out)",
    )
    token: str | None = Field(
        default=None, description="join grant of the site the leg joins as; None with lobby"
    )
    lobby: bool = Field(default=False, description="PIN pending: in no room until admitted")
    upstream: bool = Field(
        default=False,
        description="the bridge above: its media is a source the chair can give the floor to, "
        "and it receives the room's programme",
    )
    direction: Literal["in", "out"] = Field(
        default="in", description="a call the room system made (in) or the bridge made (out)"
    )


class SipLegOpened(BaseModel):
    leg_id: str
    sdp: str = Field(description="the worker's SDP answer (call in) or offer (call out)")


class SipLegAnswer(BaseModel):
    sdp: str = Field(min_length=1, max_length=MAX_SIP_SDP_BYTES)


class SipLegAdmit(BaseModel):
    token: str = Field(min_length=1, description="join grant of the site the caller joins as")


class SipLegDtmf(BaseModel):
    digits: str = Field(min_length=1, max_length=32, pattern=r"^[0-9*#A-Da-d]+$")


class SipLegClose(BaseModel):
    reason: str = Field(default="hangup", max_length=200)


class SipLegEvent(BaseModel):
    """Worker → gateway, one JSON line each on the leg's event stream."""

    type: Literal["dtmf", "media", "closed"]
    digit: str | None = Field(default=None, max_length=1)
    reason: str | None = Field(default=None, max_length=200)


class SipLegInfo(BaseModel):
    """One open leg as the worker sees it: who, where, which codecs, how long, what is lost."""

    leg_id: str
    call_id: str
    remote_uri: str
    display_name: str
    direction: Literal["in", "out"]
    upstream: bool
    room: str | None = Field(description="None: in the lobby (PIN pending) or not admitted yet")
    occurrence_id: int | None
    site_id: int | None
    site_name: str | None
    audio_codec: str | None = Field(description="e.g. PCMU/8000; None before the far end answered")
    video_codec: str | None = Field(description="e.g. H264/90000; None without video")
    opened_at: datetime
    duration_s: float
    loss_sent_ratio: float | None = Field(
        description="fraction of our packets the far end lost, from its last RTCP receiver "
        "report (the worse of audio and video); None before one came"
    )
    loss_received_ratio: float | None = Field(
        description="fraction of the far end's audio packets we never received; None before"
    )


class SipLegList(BaseModel):
    """`GET /sip-legs`: every open leg of the worker, oldest first."""

    node_id: str
    legs: list[SipLegInfo]
