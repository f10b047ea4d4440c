"""Vietnamese dictionary order for names shown to users."""

from __future__ import annotations

from confbridge.text import vietnamese_key


def ordered(*names: str) -> list[str]:
    return sorted(names, key=vietnamese_key)


def test_letters_of_the_vietnamese_alphabet_follow_their_base_letter() -> None:
    # "ô" sorts between "o" and "u": Hồng before Hùng (code points put "u" first).
    assert ordered("Hùng", "Hồng") == ["Hồng", "Hùng"]
    # "Đ" sorts after "D", not after "Z".
    assert ordered("Đại Yên", "Yên Bái", "Dương Kinh", "Ea Kar") == [
        "Dương Kinh",
        "Đại Yên",
        "Ea Kar",
        "Yên Bái",
    ]
    assert ordered("ư", "u", "ơ", "ô", "o", "ê", "e", "â", "ă", "a") == [
        "a", "ă", "â", "e", "ê", "o", "ô", "ơ", "u", "ư"
    ]  # fmt: skip


def test_tones_count_only_when_the_letters_are_equal() -> None:
    # huyền, hỏi, ngã, sắc, nặng after the unmarked letter
    assert ordered("Hạ", "Há", "Hã", "Hả", "Hà", "Ha") == ["Ha", "Hà", "Hả", "Hã", "Há", "Hạ"]
    # the letters decide first: "Hà" before "Hai" although "a" with a tone is after "a"
    assert ordered("Hai", "Hà Nội", "Hạnh") == ["Hà Nội", "Hai", "Hạnh"]


def test_composed_and_decomposed_text_and_case_sort_alike() -> None:
    composed, decomposed = "Hồng", "Ho\u0302\u0300ng"
    assert vietnamese_key(composed) == vietnamese_key(decomposed)
    assert vietnamese_key("hồng")[:2] == vietnamese_key("HỒNG")[:2]
    assert ordered("Phòng 10", "Phòng 2", "Phòng A") == ["Phòng 10", "Phòng 2", "Phòng A"]
    # a letter that casefolds to two ("ß") still gives a key; the empty name comes first
    assert ordered("Straße", "") == ["", "Straße"]
