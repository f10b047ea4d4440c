"""SDP of SIP calls (RFC 4566, offer/answer RFC 3264): plain RTP/AVP or RTP/SAVP with SDES keys
(RFC 4568), one port per stream, no ICE and no BUNDLE.

`parse_sdp` reads an offer or an answer strictly and within limits: anything it cannot read
raises `SdpError` (a `ValueError`) with a message fit for a 400. `answer_offer` chooses what the
worker takes from an offer (`MediaPlan`) and `render_answer` writes the answer once the leg has
its ports; `render_offer` and `accept_answer` do the same for calls the bridge makes.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from confbridge_kernel.sip_legs import MAX_SIP_SDP_BYTES

MAX_SDP_LINES = 300
MAX_LINE_CHARS = 1000
MAX_MEDIA = 8
MAX_FORMATS = 32
SRTP_SUITES = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")
SRTP_KEY_SALT_BYTES = 30  # 128-bit master key + 112-bit salt (RFC 4568 §6.2.1)
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
TELEPHONE_EVENT = "telephone-event"
# Static payload types of RFC 3551 §6 that a SIP phone may offer without an rtpmap line.
_STATIC = {0: ("PCMU", 8000, 1), 8: ("PCMA", 8000, 1), 9: ("G722", 8000, 1)}
# Audio formats the worker transcodes, by preference (encoding name, RTP clock rate).
AUDIO_PREFERENCE = (("opus", 48000), ("G722", 8000), ("PCMU", 8000), ("PCMA", 8000))
_REVERSE = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly"}


class SdpError(ValueError):
    """An SDP the worker cannot read or answer; its message says why."""


@dataclass(frozen=True)
class SdpCodec:
    """One payload format of an m-line (rtpmap and fmtp)."""

    payload_type: int
    name: str
    clock_rate: int
    channels: int = 1
    fmtp: Mapping[str, str] = field(default_factory=dict)

    def is_named(self, name: str, clock_rate: int) -> bool:
        return self.name.lower() == name.lower() and self.clock_rate == clock_rate

    def rtpmap(self) -> str:
        channels = f"/{self.channels}" if self.channels > 1 else ""
        return f"{self.payload_type} {self.name}/{self.clock_rate}{channels}"

    def fmtp_line(self) -> str | None:
        if not self.fmtp:
            return None
        params = ";".join(f"{k}={v}" if v else k for k, v in self.fmtp.items())
        return f"a=fmtp:{self.payload_type} {params}"


@dataclass(frozen=True)
class SdpCrypto:
    """One `a=crypto` line (RFC 4568 §9.1): tag, suite and the master key with its salt."""

    tag: int
    suite: str
    key_salt: bytes

    def line(self) -> str:
        inline = base64.b64encode(self.key_salt).decode()
        return f"a=crypto:{self.tag} {self.suite} inline:{inline}"


@dataclass(frozen=True)
class SdpMedia:
    """One m-line and its attributes."""

    kind: str
    port: int
    proto: str
    formats: tuple[str, ...]
    codecs: tuple[SdpCodec, ...]
    address: str | None
    direction: str = "sendrecv"
    rtcp_port: int | None = None
    rtcp_address: str | None = None
    rtcp_mux: bool = False
    cryptos: tuple[SdpCrypto, ...] = ()

    @property
    def rejected(self) -> bool:
        """Port 0: the stream is refused (RFC 3264 §6)."""
        return self.port == 0

    @property
    def secure(self) -> bool:
        return self.proto == "RTP/SAVP"


@dataclass(frozen=True)
class SessionDescription:
    """A parsed SDP: the session's address and its streams, in order."""

    address: str | None
    media: tuple[SdpMedia, ...]

    def first(self, kind: str) -> SdpMedia | None:
        """The first stream of this kind that is not rejected."""
        return next((m for m in self.media if m.kind == kind and not m.rejected), None)


@dataclass(frozen=True)
class AudioPlan:
    """The audio of a leg as negotiated: what flows, where, and with which keys."""

    codec: SdpCodec
    telephone_event: SdpCodec | None
    remote: tuple[str, int] | None
    remote_rtcp: tuple[str, int] | None
    rtcp_mux: bool
    direction: str  # ours: sendrecv, sendonly, recvonly or inactive
    srtp_suite: str | None = None
    remote_key: bytes | None = None
    local_key: bytes | None = None
    crypto_tag: int = 1


@dataclass(frozen=True)
class VideoPlan:
    """Video accepted for forwarding (the video path of `sfu.sip.video` carries it)."""

    codec: SdpCodec
    remote: tuple[str, int] | None
    remote_rtcp: tuple[str, int] | None
    rtcp_mux: bool
    direction: str


@dataclass(frozen=True)
class MediaPlan:
    """What the worker takes of an offer (or got in an answer): one entry per offered m-line,
    None for the streams it refuses."""

    offered: tuple[SdpMedia, ...]
    audio: AudioPlan | None
    video: VideoPlan | None


# --- parsing -------------------------------------------------------------------------------------


def _port(text: str, what: str) -> int:
    if not text.isdigit() or len(text) > 5 or int(text) > 65535:
        raise SdpError(f"{what}: {text[:20]!r} is not a port")
    return int(text)


def _address(fields: list[str], line: str) -> str:
    # c=IN IP4 192.0.2.1 (RFC 4566 §5.7): a literal address, never a name to resolve
    if len(fields) != 3 or fields[0] != "IN" or fields[1] not in ("IP4", "IP6"):
        raise SdpError(f"malformed connection line {line[:80]!r}")
    text = fields[2].split("/", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise SdpError(f"the connection address {text[:60]!r} is not an IP address") from None
    if address.version != 4:
        raise SdpError("only IPv4 media addresses are supported")
    if address.is_multicast:
        raise SdpError("multicast media addresses are not supported")
    return str(address)


def _crypto(value: str) -> SdpCrypto | None:
    parts = value.split()
    if len(parts) < 3 or not parts[0].isdigit() or len(parts[0]) > 9:
        raise SdpError(f"malformed a=crypto line {value[:80]!r}")
    if parts[1] not in SRTP_SUITES:
        return None  # a suite we do not speak: another line may offer one we do
    key = parts[2]
    if not key.startswith("inline:"):
        raise SdpError("a=crypto: only inline keys are supported")
    material, *extra = key[len("inline:") :].split("|")
    if any(":" in part for part in extra):  # a lifetime ("2^31") is fine; an MKI is not
        raise SdpError("a=crypto: keys with an MKI are not supported")
    try:
        key_salt = base64.b64decode(material, validate=True)
    except ValueError:
        raise SdpError("a=crypto: the key is not base64") from None
    if len(key_salt) != SRTP_KEY_SALT_BYTES:
        raise SdpError(f"a=crypto: the key and salt must be {SRTP_KEY_SALT_BYTES} bytes")
    return SdpCrypto(int(parts[0]), parts[1], key_salt)


def _rtpmap(value: str) -> tuple[int, str, int, int]:
    pt_text, _, encoding = value.partition(" ")
    pieces = encoding.strip().split("/")
    if (
        not pt_text.isdigit()
        or int(pt_text) > 127
        or len(pieces) not in (2, 3)
        or not pieces[0]
        or not all(p.isdigit() and 0 < len(p) <= 7 for p in pieces[1:])
    ):
        raise SdpError(f"malformed a=rtpmap {value[:80]!r}")
    channels = int(pieces[2]) if len(pieces) == 3 else 1
    if int(pieces[1]) == 0 or not 1 <= channels <= 8:
        raise SdpError(f"a=rtpmap {value[:80]!r}: impossible clock rate or channels")
    return int(pt_text), pieces[0], int(pieces[1]), channels


def _fmtp(value: str) -> tuple[int, dict[str, str]]:
    pt_text, _, params = value.partition(" ")
    if not pt_text.isdigit() or int(pt_text) > 127:
        raise SdpError(f"malformed a=fmtp {value[:80]!r}")
    parsed: dict[str, str] = {}
    for item in params.split(";"):
        name, _, param = item.strip().partition("=")
        if name:
            parsed[name.strip().lower()] = param.strip()
    return int(pt_text), parsed


class _MediaBuilder:
    """The lines of one m-line section as they are read."""

    def __init__(self, line: str) -> None:
        fields = line[2:].split()
        if len(fields) < 4:
            raise SdpError(f"malformed media line {line[:80]!r}")
        self.kind = fields[0]
        self.port = _port(fields[1].split("/", 1)[0], "m= line")
        self.proto = fields[2]
        self.formats = tuple(fields[3:])
        if len(self.formats) > MAX_FORMATS:
            raise SdpError(f"more than {MAX_FORMATS} formats in one m-line")
        self.address: str | None = None
        self.direction = "sendrecv"
        self.rtcp: tuple[int, str | None] | None = None
        self.rtcp_mux = False
        self.rtpmaps: dict[int, tuple[str, int, int]] = {}
        self.fmtps: dict[int, dict[str, str]] = {}
        self.cryptos: list[SdpCrypto] = []

    def attribute(self, name: str, value: str) -> None:
        if name in DIRECTIONS:
            self.direction = name
        elif name == "rtcp-mux":
            self.rtcp_mux = True
        elif name == "rtcp":
            fields = value.split()
            port = _port(fields[0] if fields else "", "a=rtcp")
            address = _address(fields[1:], f"a=rtcp:{value}") if len(fields) > 1 else None
            self.rtcp = (port, address)
        elif name == "rtpmap":
            pt, encoding, rate, channels = _rtpmap(value)
            self.rtpmaps[pt] = (encoding, rate, channels)
        elif name == "fmtp":
            pt, params = _fmtp(value)
            self.fmtps[pt] = params
        elif name == "crypto":
            crypto = _crypto(value)
            if crypto is not None:
                self.cryptos.append(crypto)

    def build(self) -> SdpMedia:
        codecs = []
        if self.proto in ("RTP/AVP", "RTP/SAVP"):
            for text in self.formats:
                if not text.isdigit() or int(text) > 127:
                    raise SdpError(f"payload type {text[:10]!r} is not a number up to 127")
                pt = int(text)
                mapped = self.rtpmaps.get(pt) or _STATIC.get(pt)
                if mapped is not None:
                    name, rate, channels = mapped
                    codecs.append(SdpCodec(pt, name, rate, channels, self.fmtps.get(pt, {})))
        rtcp_port, rtcp_address = self.rtcp if self.rtcp else (None, None)
        return SdpMedia(
            kind=self.kind,
            port=self.port,
            proto=self.proto,
            formats=self.formats,
            codecs=tuple(codecs),
            address=self.address,
            direction=self.direction,
            rtcp_port=rtcp_port,
            rtcp_address=rtcp_address,
            rtcp_mux=self.rtcp_mux,
            cryptos=tuple(self.cryptos),
        )


def _lines(text: str) -> list[str]:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SIP_SDP_BYTES:
        raise SdpError(f"the SDP is larger than {MAX_SIP_SDP_BYTES} bytes")
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    if not lines or lines[0].strip() != "v=0":
        raise SdpError("the SDP must start with 'v=0'")
    if len(lines) > MAX_SDP_LINES:
        raise SdpError(f"the SDP has more than {MAX_SDP_LINES} lines")
    for line in lines:
        if len(line) > MAX_LINE_CHARS:
            raise SdpError(f"an SDP line is longer than {MAX_LINE_CHARS} characters")
        if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
            raise SdpError(f"malformed SDP line {line[:80]!r}")
        if any(ord(ch) < 0x20 and ch != "\t" for ch in line):
            raise SdpError("the SDP contains control characters")
    return lines


def parse_sdp(text: str) -> SessionDescription:
    """Read an SDP offer or answer; `SdpError` if it is malformed or beyond the limits."""
    session_address: str | None = None
    media: list[_MediaBuilder] = []
    for line in _lines(text):
        kind, value = line[0], line[2:]
        if kind == "m":
            if len(media) == MAX_MEDIA:
                raise SdpError(f"more than {MAX_MEDIA} media streams")
            media.append(_MediaBuilder(line))
        elif kind == "c":
            address = _address(value.split(), line)
            if media:
                media[-1].address = address
            else:
                session_address = address
        elif kind == "a" and media:
            name, _, attribute_value = value.partition(":")
            media[-1].attribute(name.strip(), attribute_value.strip())
    if not media:
        raise SdpError("the SDP has no media stream")
    built = tuple(builder.build() for builder in media)
    for stream in built:
        if not stream.rejected and stream.address is None and session_address is None:
            raise SdpError(f"the {stream.kind} stream has no connection address (c=)")
    return SessionDescription(session_address, built)


# --- choosing ------------------------------------------------------------------------------------


def _endpoints(
    media: SdpMedia, session_address: str | None
) -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
    """Where the far end wants its RTP and RTCP (None: not yet, e.g. c=0.0.0.0 on hold)."""
    host = media.address or session_address
    if host is None or host == "0.0.0.0":
        return None, None
    rtp = (host, media.port)
    if media.rtcp_mux:
        return rtp, rtp
    rtcp_port = media.rtcp_port if media.rtcp_port is not None else media.port + 1
    return rtp, (media.rtcp_address or host, rtcp_port)


def choose_audio_codec(codecs: tuple[SdpCodec, ...]) -> SdpCodec | None:
    """The offered audio format the worker prefers (`AUDIO_PREFERENCE`), or None."""
    for name, rate in AUDIO_PREFERENCE:
        for codec in codecs:
            if codec.is_named(name, rate):
                return codec
    return None


def _telephone_event(codecs: tuple[SdpCodec, ...]) -> SdpCodec | None:
    return next((c for c in codecs if c.is_named(TELEPHONE_EVENT, 8000)), None)


def _audio_plan(offer: SdpMedia, session_address: str | None, *, answering: bool) -> AudioPlan:
    codec = choose_audio_codec(offer.codecs)
    if codec is None:
        names = ", ".join(c.name for c in offer.codecs) or "none we know"
        raise SdpError(f"no common audio codec (offered: {names}; we take opus, G722, PCMU, PCMA)")
    suite = remote_key = local_key = None
    tag = 1
    if offer.secure:
        crypto = next((c for c in offer.cryptos if c.suite in SRTP_SUITES), None)
        if crypto is None:
            raise SdpError(f"RTP/SAVP without an a=crypto line of {' or '.join(SRTP_SUITES)}")
        suite, remote_key, tag = crypto.suite, crypto.key_salt, crypto.tag
        local_key = secrets.token_bytes(SRTP_KEY_SALT_BYTES) if answering else None
    elif offer.proto != "RTP/AVP":
        raise SdpError(f"audio transport {offer.proto[:30]!r} is not RTP/AVP or RTP/SAVP")
    remote, remote_rtcp = _endpoints(offer, session_address)
    direction = _REVERSE.get(offer.direction, "inactive")
    return AudioPlan(
        codec=codec,
        telephone_event=_telephone_event(offer.codecs),
        remote=remote,
        remote_rtcp=remote_rtcp,
        rtcp_mux=offer.rtcp_mux,
        direction=direction,
        srtp_suite=suite,
        remote_key=remote_key,
        local_key=local_key,
        crypto_tag=tag,
    )


def answer_video(
    offer: SdpMedia, session_address: str | None, *, can_forward: bool
) -> VideoPlan | None:
    """The video the worker takes of this m-line, or None to refuse it (port 0).

    H.264 with packetization-mode=1 only, answered with the offered profile-level-id, and only
    when the leg has a video path (`can_forward`): the room system's video is forwarded, never
    transcoded (a room source in another codec is transcoded for it, `sfu.sip.video_transcode`).
    """
    if not can_forward or offer.proto != "RTP/AVP":
        return None
    for codec in offer.codecs:
        if codec.is_named("H264", 90000) and codec.fmtp.get("packetization-mode") == "1":
            remote, remote_rtcp = _endpoints(offer, session_address)
            fmtp = {"packetization-mode": "1"}
            if "profile-level-id" in codec.fmtp:
                fmtp["profile-level-id"] = codec.fmtp["profile-level-id"]
            direction = _REVERSE.get(offer.direction, "inactive")
            return VideoPlan(
                codec=replace(codec, fmtp=fmtp),
                remote=remote,
                remote_rtcp=remote_rtcp,
                rtcp_mux=offer.rtcp_mux,
                direction=direction,
            )
    return None


def answer_offer(offer_text: str, *, can_forward_video: bool = False) -> MediaPlan:
    """What the worker takes of a caller's offer; `SdpError` when there is no usable audio."""
    offer = parse_sdp(offer_text)
    audio_offer = offer.first("audio")
    if audio_offer is None:
        raise SdpError("the offer has no audio stream")
    audio = _audio_plan(audio_offer, offer.address, answering=True)
    video_offer = offer.first("video")
    video = (
        answer_video(video_offer, offer.address, can_forward=can_forward_video)
        if video_offer is not None
        else None
    )
    return MediaPlan(offered=offer.media, audio=audio, video=video)


# --- writing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalPorts:
    """Where the worker receives a stream: RTP port, RTCP port (None: muxed)."""

    rtp: int
    rtcp: int | None


def _origin(address: str) -> list[str]:
    session = str(int(time.time() * 1000) & 0x7FFFFFFFFFFF)
    return ["v=0", f"o=confbridge {session} 1 IN IP4 {address}", "s=confbridge", "t=0 0"]


def _audio_lines(plan: AudioPlan, ports: LocalPorts, codecs: tuple[SdpCodec, ...]) -> list[str]:
    proto = "RTP/SAVP" if plan.srtp_suite else "RTP/AVP"
    formats = " ".join(str(c.payload_type) for c in codecs)
    lines = [f"m=audio {ports.rtp} {proto} {formats}"]
    for codec in codecs:
        lines.append(f"a=rtpmap:{codec.rtpmap()}")
        fmtp = codec.fmtp_line()
        if fmtp:
            lines.append(fmtp)
    lines.append("a=ptime:20")
    if ports.rtcp is None:
        lines.append("a=rtcp-mux")
    else:
        lines.append(f"a=rtcp:{ports.rtcp}")
    if plan.srtp_suite and plan.local_key:
        lines.append(SdpCrypto(plan.crypto_tag, plan.srtp_suite, plan.local_key).line())
    lines.append(f"a={plan.direction}")
    return lines


def _video_lines(plan: VideoPlan, ports: LocalPorts) -> list[str]:
    codec = plan.codec
    lines = [f"m=video {ports.rtp} RTP/AVP {codec.payload_type}", f"a=rtpmap:{codec.rtpmap()}"]
    fmtp = codec.fmtp_line()
    if fmtp:
        lines.append(fmtp)
    lines.append("a=rtcp-fb:* nack pli")
    lines.append("a=rtcp-mux" if ports.rtcp is None else f"a=rtcp:{ports.rtcp}")
    lines.append(f"a={plan.direction}")
    return lines


def render_answer(
    plan: MediaPlan, *, address: str, audio: LocalPorts, video: LocalPorts | None = None
) -> str:
    """The answer to the offer `plan` was made from: every offered m-line in its order,
    refused ones with port 0 (RFC 3264 §6)."""
    assert plan.audio is not None
    lines = [*_origin(address), f"c=IN IP4 {address}"]
    audio_done = video_done = False
    for offered in plan.offered:
        if offered.kind == "audio" and not offered.rejected and not audio_done:
            codecs = (plan.audio.codec,)
            if plan.audio.telephone_event is not None:
                codecs += (plan.audio.telephone_event,)
            lines += _audio_lines(plan.audio, audio, codecs)
            audio_done = True
        elif offered.kind == "video" and not offered.rejected and not video_done and plan.video:
            assert video is not None, "video was accepted: give its ports"
            lines += _video_lines(plan.video, video)
            video_done = True
        else:
            lines.append(f"m={offered.kind} 0 {offered.proto} {' '.join(offered.formats[:1])}")
    return "\r\n".join(lines) + "\r\n"


OFFER_AUDIO = (
    SdpCodec(111, "opus", 48000, 2, {"minptime": "10", "useinbandfec": "1"}),
    SdpCodec(9, "G722", 8000),
    SdpCodec(0, "PCMU", 8000),
    SdpCodec(8, "PCMA", 8000),
    SdpCodec(101, TELEPHONE_EVENT, 8000, 1, {"0-16": ""}),
)
OFFER_VIDEO = SdpCodec(
    96, "H264", 90000, 1, {"packetization-mode": "1", "profile-level-id": "42e01f"}
)


@dataclass(frozen=True)
class LocalOffer:
    """The worker's offer for a call out, kept to check the far end's answer against."""

    sdp: str
    local_key: bytes | None
    srtp_suite: str | None


def render_offer(
    *, address: str, audio: LocalPorts, video: LocalPorts | None = None, srtp: bool = False
) -> LocalOffer:
    """The worker's offer for a call the bridge makes: opus, G722, PCMU, PCMA and
    telephone-event; H.264 video when the leg has a video path (`video` ports given)."""
    key = secrets.token_bytes(SRTP_KEY_SALT_BYTES) if srtp else None
    suite = SRTP_SUITES[0] if srtp else None
    plan = AudioPlan(
        codec=OFFER_AUDIO[0],
        telephone_event=None,
        remote=None,
        remote_rtcp=None,
        rtcp_mux=audio.rtcp is None,
        direction="sendrecv",
        srtp_suite=suite,
        local_key=key,
    )
    lines = [*_origin(address), f"c=IN IP4 {address}", *_audio_lines(plan, audio, OFFER_AUDIO)]
    if video is not None:
        lines += _video_lines(
            VideoPlan(OFFER_VIDEO, None, None, video.rtcp is None, "sendrecv"), video
        )
    return LocalOffer("\r\n".join(lines) + "\r\n", key, suite)


def accept_answer(offer: LocalOffer, answer_text: str, *, can_forward_video: bool) -> MediaPlan:
    """The far end's answer to `offer`: what it chose, checked against what was offered."""
    answer = parse_sdp(answer_text)
    audio_answer = next((m for m in answer.media if m.kind == "audio"), None)
    if audio_answer is None or audio_answer.rejected:
        raise SdpError("the answer refuses audio")
    if audio_answer.secure != (offer.srtp_suite is not None):
        raise SdpError(f"the answer's transport {audio_answer.proto} is not the one offered")
    offered = {(c.name.lower(), c.clock_rate) for c in OFFER_AUDIO}
    if not any((c.name.lower(), c.clock_rate) in offered for c in audio_answer.codecs):
        raise SdpError("the answer chose no audio format that was offered")
    audio = _audio_plan(audio_answer, answer.address, answering=False)
    if audio.srtp_suite is not None:
        audio = replace(audio, local_key=offer.local_key)
    video_answer = answer.first("video")
    video = (
        answer_video(video_answer, answer.address, can_forward=can_forward_video)
        if video_answer is not None
        else None
    )
    return MediaPlan(offered=answer.media, audio=audio, video=video)
