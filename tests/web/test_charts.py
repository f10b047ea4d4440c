"""The report's SVG bar charts."""

from __future__ import annotations

from confbridge.web.charts import Bar, ratio_bars

MONTHS = [f"T{month}" for month in range(1, 13)]


def chart(bars: list[Bar]) -> str:
    return str(
        ratio_bars(
            bars,
            title="Tỷ lệ trực tuyến",
            target=0.8,
            target_label="Chỉ tiêu 80%",
            percent=lambda value: f"{value:.0%}",
            no_data="chưa có cuộc họp",
            chart_id="chart-0",
        )
    )


def test_an_empty_chart_says_so_once() -> None:
    svg = chart([Bar(month, None) for month in MONTHS])
    assert svg.count("chưa có cuộc họp") == 1
    assert "<rect" not in svg
    assert all(f">{month}</text>" in svg for month in MONTHS)


def test_a_month_without_meetings_among_others_is_a_dash_with_its_words_in_a_tooltip() -> None:
    svg = chart([Bar(month, 0.9 if month != "T3" else None) for month in MONTHS])
    assert svg.count("<rect") == 11
    assert svg.count("chưa có cuộc họp") == 1
    assert "–<title>T3: chưa có cuộc họp</title>" in svg
    assert svg.count(">90%</text>") == 11
