"""ConfBridge: the video-conference bridge for city and provincial governments."""

from confbridge_kernel import __version__

__all__ = ["__version__"]
