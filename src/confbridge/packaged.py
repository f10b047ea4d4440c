"""Files shipped beside the code: the default `config.yaml` and the demo `schedules/`.

A wheel carries them as package data under `confbridge/defaults/` (pyproject's force-include);
an editable checkout finds them at the repository's root instead.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

PACKAGE_DATA_DIR = "defaults"
# src/confbridge/packaged.py → the repository's root, in a checkout
_CHECKOUT_ROOT = Path(__file__).resolve().parents[2]


def packaged_path(name: str) -> Path | None:
    """The shipped file or directory `name` (e.g. "config.yaml", "schedules"), or None."""
    resource = files("confbridge").joinpath(PACKAGE_DATA_DIR, name)
    # an installed wheel is a directory tree on disk, so the resource is a real path
    if isinstance(resource, Path) and resource.exists():
        return resource
    in_checkout = _CHECKOUT_ROOT / name
    if in_checkout.exists() and (_CHECKOUT_ROOT / "pyproject.toml").is_file():
        return in_checkout
    return None
