"""The aiortc and aioice versions whose internals `sfu.rtc` is written against.

Imported first by the package, so any other version fails at the first import of `sfu.rtc`
with a clear message instead of somewhere in the media path.
"""

from __future__ import annotations

import aioice
import aiortc

AIORTC_VERSION = "1.16.0"
AIOICE_MINOR_VERSION = "0.13."

if aiortc.__version__ != AIORTC_VERSION:
    raise ImportError(
        f"sfu.rtc is written against aiortc {AIORTC_VERSION} internals and "
        f"aiortc {aiortc.__version__} is installed; pin aiortc=={AIORTC_VERSION} or port "
        "this package (tests/sfu/rtc/ lists what it relies on)"
    )
if not aioice.__version__.startswith(AIOICE_MINOR_VERSION):
    raise ImportError(
        f"sfu.rtc is written against aioice {AIOICE_MINOR_VERSION}x internals and "
        f"aioice {aioice.__version__} is installed"
    )
