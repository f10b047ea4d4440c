"""`confbridge terminal`: the ward-hall terminal agent (pairs once, then joins its site's
meetings by itself)."""

from __future__ import annotations

import logging.config
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from confbridge.cli.common import fail

if TYPE_CHECKING:
    from confbridge.agent.agent import AgentOptions
    from confbridge.agent.content import ContentSource
    from confbridge.agent.media import MediaSources
    from confbridge.agent.screen import ScreenOptions

# The exit status when the control plane refuses the terminal token (revoked).
TERMINAL_REVOKED_EXIT = 3

ServerOption = Annotated[
    str,
    typer.Option(
        help="the control plane, e.g. https://hop.example.vn",
        envvar="CONFBRIDGE_TERMINAL_SERVER",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(help="the terminal token (cbt_...)", envvar="CONFBRIDGE_TERMINAL_TOKEN"),
]
TokenFileOption = Annotated[
    Path | None,
    typer.Option(
        help="where the token is kept (written after --pair)",
        envvar="CONFBRIDGE_TERMINAL_TOKEN_FILE",
    ),
]
PairOption = Annotated[
    str | None,
    typer.Option("--pair", help="a pairing code from IT staff, used once to get the token"),
]
CameraOption = Annotated[
    str | None, typer.Option(help="a V4L2 camera, e.g. /dev/video0 (else a test pattern)")
]
MicrophoneOption = Annotated[
    str | None, typer.Option(help="an ALSA capture device, e.g. hw:1 (else a tone)")
]
VideoFileOption = Annotated[
    str | None, typer.Option(help="publish this file (looped) instead of a camera")
]
VideoSizeOption = Annotated[str, typer.Option(help="camera capture size")]
ContentFileOption = Annotated[
    str | None,
    typer.Option(
        help="present this video or slides file (looped) as content (trình chiếu) in every "
        "meeting, whenever the site may present (the chair site; another once it has the floor)"
    ),
]
ContentDeviceOption = Annotated[
    str | None,
    typer.Option(
        help="present this capture device as content: a V4L2 grabber, e.g. /dev/video2, or "
        "an X display's screen, e.g. :0.0"
    ),
]
ContentRetryOption = Annotated[
    float, typer.Option(help="how often to ask again while the site may not present", min=0.1)
]
RelayOnlyOption = Annotated[
    bool, typer.Option(help="use TURN relay candidates only (strict firewalls)")
]
TurnTransportOption = Annotated[
    str,
    typer.Option(
        help="how TURN is reached: auto (direct UDP first, then relay over TURN/TCP, then "
        "TURN/TLS when media does not come up), or always udp, tcp or tls",
        envvar="CONFBRIDGE_TERMINAL_TURN_TRANSPORT",
    ),
]
TurnCaFileOption = Annotated[
    Path | None,
    typer.Option(
        help="a PEM file of CA certificates trusted for turns: servers, beside the system's",
        envvar="CONFBRIDGE_TERMINAL_TURN_CA_FILE",
    ),
]
HostAddressOption = Annotated[
    list[str] | None,
    typer.Option(help="gather ICE candidates on this local address (repeatable)"),
]
JoinEarlyOption = Annotated[
    float, typer.Option(help="join this many seconds before the start", min=0)
]
AgendaIntervalOption = Annotated[float, typer.Option(help="read the agenda this often", min=1)]
HeartbeatIntervalOption = Annotated[
    float | None, typer.Option(help="default: what the control plane says (30 s)", min=1)
]
BackoffMaxOption = Annotated[
    float, typer.Option(help="longest wait between two rejoin attempts", min=0.1)
]
LogFormatOption = Annotated[str, typer.Option(help="text or json")]
ScreenOption = Annotated[
    bool,
    typer.Option(
        help="show the programme on this machine's display: keep a Chromium kiosk window on "
        "/terminal (it joins the meetings with the hall's camera; the agent does not)",
        envvar="CONFBRIDGE_TERMINAL_SCREEN",
    ),
]
ChromiumOption = Annotated[str, typer.Option(help="the browser for --screen")]
ScreenProfileOption = Annotated[
    Path | None,
    typer.Option(
        help="the kiosk window's browser profile (default: screen-profile beside the token file)",
        envvar="CONFBRIDGE_TERMINAL_SCREEN_PROFILE",
    ),
]
ScreenFlagOption = Annotated[
    list[str] | None,
    typer.Option(help="one more Chromium flag for --screen, e.g. --ozone-platform=wayland"),
]
ScreenCheckOption = Annotated[
    float, typer.Option(help="how often the kiosk window is checked (3 misses: hung)", min=0.2)
]


def terminal(
    server: ServerOption,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
    pair: PairOption = None,
    camera: CameraOption = None,
    microphone: MicrophoneOption = None,
    video_file: VideoFileOption = None,
    video_size: VideoSizeOption = "640x480",
    content_file: ContentFileOption = None,
    content_device: ContentDeviceOption = None,
    content_retry_s: ContentRetryOption = 5.0,
    relay_only: RelayOnlyOption = False,
    turn_transport: TurnTransportOption = "auto",
    turn_ca_file: TurnCaFileOption = None,
    host_address: HostAddressOption = None,
    join_early_s: JoinEarlyOption = 0.0,
    agenda_interval_s: AgendaIntervalOption = 30.0,
    heartbeat_interval_s: HeartbeatIntervalOption = None,
    backoff_max_s: BackoffMaxOption = 8.0,
    log_format: LogFormatOption = "text",
    screen: ScreenOption = False,
    chromium: ChromiumOption = "/usr/bin/chromium",
    screen_profile: ScreenProfileOption = None,
    screen_flag: ScreenFlagOption = None,
    screen_check_interval_s: ScreenCheckOption = 5.0,
) -> None:
    """Run a ward-hall terminal: pair once, then join every meeting of its site by itself."""

    from confbridge.agent.agent import AgentOptions
    from confbridge.agent.content import ContentSource
    from confbridge.agent.media import MediaSources
    from confbridge_kernel.logs import NOISY_MEDIA_LOGGERS, log_config

    # options checked first: logging set up for a run that is refused would outlive it
    _check_options(
        log_format=log_format,
        server=server,
        has_token=bool(token or pair) or _stored_token(token_file),
        screen=screen,
        own_media=bool(camera or microphone or video_file),
        content_file=content_file,
        content_device=content_device,
    )
    turn_tls = _turn_tls(turn_transport, turn_ca_file)
    # one line per agent event: the libraries' per-request and per-check lines stay out
    logging.config.dictConfig(
        log_config(log_format, "INFO", quiet=NOISY_MEDIA_LOGGERS)  # type: ignore[arg-type]
    )
    options = AgentOptions(
        server=server,
        heartbeat_interval_s=heartbeat_interval_s,
        agenda_interval_s=agenda_interval_s,
        join_early_s=join_early_s,
        relay_only=relay_only,
        turn_transport=None if turn_transport == "auto" else turn_transport,  # type: ignore[arg-type]
        turn_tls=turn_tls,
        backoff_max_s=backoff_max_s,
        content_retry_s=content_retry_s,
    )
    media = MediaSources(
        camera=camera, microphone=microphone, video_file=video_file, video_size=video_size
    )
    screen_options = _screen_options(
        screen, token_file, chromium, screen_profile, screen_flag, screen_check_interval_s
    )
    _run(
        options,
        media,
        screen_options,
        token=token,
        token_file=token_file,
        pair=pair,
        host_addresses=host_address or [],
        content=ContentSource(file=content_file, device=content_device),
    )


def _turn_tls(turn_transport: str, turn_ca_file: Path | None) -> ssl.SSLContext | None:
    """The TURN options checked (exit 2 with a message) and the TLS context for turns: URLs."""
    from confbridge.agent.routes import TURN_TRANSPORTS, turn_tls_context

    if turn_transport != "auto" and turn_transport not in TURN_TRANSPORTS:
        fail(f"--turn-transport: unknown value {turn_transport!r} (auto, udp, tcp or tls)", code=2)
    try:
        return turn_tls_context(turn_ca_file)
    except (OSError, ssl.SSLError) as exc:
        fail(f"--turn-ca-file: cannot load {turn_ca_file}: {exc}", code=2)


def _screen_options(
    screen: bool,
    token_file: Path | None,
    chromium: str,
    screen_profile: Path | None,
    screen_flag: list[str] | None,
    check_interval_s: float,
) -> ScreenOptions | None:
    """The kiosk window's options with --screen (its profile beside the token by default)."""
    from confbridge.agent.screen import ScreenOptions

    if not screen:
        return None
    default_profile = (token_file.parent if token_file else Path.cwd()) / "screen-profile"
    return ScreenOptions(
        chromium=chromium,
        profile_dir=screen_profile or default_profile,
        extra_flags=list(screen_flag or []),
        check_interval_s=check_interval_s,
    )


def _run(
    options: AgentOptions,
    media: MediaSources,
    screen_options: ScreenOptions | None,
    *,
    token: str | None,
    token_file: Path | None,
    pair: str | None,
    host_addresses: list[str],
    content: ContentSource,
) -> None:
    """Run the agent until it is stopped; a refused setup or token ends it with a message."""
    import asyncio

    from confbridge.agent.client import Revoked
    from confbridge.agent.run import AgentSetupError, run_agent

    try:
        asyncio.run(
            run_agent(
                options,
                media,
                token=token,
                token_file=token_file,
                code=pair,
                host_addresses=host_addresses,
                screen=screen_options,
                content=content,
            )
        )
    except AgentSetupError as exc:
        fail(str(exc))
    except Revoked as exc:
        # a distinct status: the systemd unit does not restart a revoked terminal
        fail(f"the terminal token was refused: {exc.detail}", code=TERMINAL_REVOKED_EXIT)
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass  # stopped (Ctrl-C, or SIGTERM from systemd) after leaving the meeting


def _stored_token(token_file: Path | None) -> bool:
    return token_file is not None and token_file.is_file() and token_file.stat().st_size > 0


def _check_options(
    *,
    log_format: str,
    server: str,
    has_token: bool,
    screen: bool,
    own_media: bool,
    content_file: str | None,
    content_device: str | None,
) -> None:
    """Refuse options that cannot work together, in one line each (exit 2, or 1 for a
    missing token)."""
    if log_format not in ("text", "json"):
        fail(f"--log-format: unknown value {log_format!r} (text or json)", code=2)
    if not server.startswith(("http://", "https://")):
        fail(f"--server must start with http:// or https://, got {server!r}", code=2)
    if not has_token:
        fail("no terminal token: give --token, a --token-file holding one, or --pair CODE")
    if screen and own_media:
        fail("--screen: the kiosk window uses the hall's camera; leave out --camera, "
             "--microphone and --video-file", code=2)  # fmt: skip
    if content_file and content_device:
        fail("give --content-file or --content-device, not both", code=2)
    if screen and (content_file or content_device):
        fail("--content-file and --content-device need the agent to attend the meetings "
             "itself; leave out --screen", code=2)  # fmt: skip
