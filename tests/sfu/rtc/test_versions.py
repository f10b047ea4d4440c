"""The aiortc/aioice versions `sfu.rtc.versions` holds the package to.

If aiortc or aioice is upgraded, these tests say exactly which private name, signature or call
moved; then port `sfu/rtc/versions.py` (and only `sfu/rtc/`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import aioice
import aioice.ice
import aioice.stun
import aiortc
import pytest

import sfu.rtc.versions as versions
from sfu.rtc.versions import AIORTC_VERSION


def test_version_is_the_pinned_one() -> None:
    assert aiortc.__version__ == AIORTC_VERSION == "1.16.0"
    assert aioice.__version__.startswith(versions.AIOICE_MINOR_VERSION)


def test_import_refuses_another_aiortc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiortc, "__version__", "1.17.0")
    path = Path(versions.__file__)
    spec = importlib.util.spec_from_file_location("sfu_rtc_versions_copy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with pytest.raises(ImportError, match=r"aiortc 1\.16\.0 internals.*1\.17\.0"):
        spec.loader.exec_module(module)
