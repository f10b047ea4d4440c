"""ConfBridge: the video-conference bridge for city and provincial governments."""

__version__ = "0.1.0"
