"""An occurrence's attendance file: the recorded leave reasons in Vietnamese."""

from __future__ import annotations

import pytest

from confbridge.attendance.export import LEAVE_REASONS, OTHER_REASON, leave_reason


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("deleted", "Điểm cầu rời cuộc họp"),
        ("connection closed", "Kết nối bị đóng"),
        ("connection failed", "Mất kết nối"),
        ("meeting_ended", "Cuộc họp kết thúc"),
        ("node_restarted", "Máy chủ truyền thông khởi động lại"),
    ],
)
def test_leave_reasons_are_written_in_vietnamese(code: str, words: str) -> None:
    assert leave_reason(code) == words


def test_no_leave_reason_is_left_in_english() -> None:
    # every label carries a Vietnamese letter: none is a code copied through
    assert all(any(ord(char) > 127 for char in label) for label in LEAVE_REASONS.values())


def test_a_presentation_stopped_by_a_user_names_the_user_and_unknown_codes_say_other() -> None:
    assert leave_reason("stopped by user:thuky") == "Bị dừng trình chiếu bởi thuky"
    assert leave_reason("some_new_code") == OTHER_REASON
    assert leave_reason(None) is None
