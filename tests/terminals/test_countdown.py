"""The kiosk's countdown wording (static/countdown.js), run in Node: days beyond a day."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import confbridge.terminals

MODULE = Path(confbridge.terminals.__file__).parent / "static" / "countdown.js"
NODE = shutil.which("node")
VI = {"day": "ngày", "days": "ngày", "hour": "giờ", "hours": "giờ"}
EN = {"day": "day", "days": "days", "hour": "hour", "hours": "hours"}

pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js to run the kiosk's module")


def countdowns(seconds: list[float], words: dict[str, str]) -> list[str]:
    script = (
        f"import {{ countdown }} from {json.dumps(MODULE.as_uri())};"
        f"const words = {json.dumps(words)};"
        f"const seconds = {json.dumps(seconds)};"
        "console.log(JSON.stringify(seconds.map((s) => countdown(s * 1000, words))));"
    )
    done = subprocess.run(
        [NODE or "node", "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(done.stdout)


def test_a_meeting_three_days_away_counts_in_days_and_hours() -> None:
    three_days = 75 * 3600 + 59 * 60 + 34  # was shown as "75:59:34"
    assert countdowns([three_days], VI) == ["3 ngày 3 giờ"]
    assert countdowns([three_days, 86400, 86400 + 3600, 2 * 86400], EN) == [
        "3 days 3 hours",
        "1 day",
        "1 day 1 hour",
        "2 days",
    ]


def test_within_a_day_the_countdown_is_a_clock() -> None:
    assert countdowns([86399, 3600, 59 * 60 + 5, 0.4, -5], VI) == [
        "23:59:59",
        "1:00:00",
        "59:05",
        "00:00",
        "00:00",
    ]
