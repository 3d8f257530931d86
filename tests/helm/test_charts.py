"""The SVG line charts of Helm's metrics pages (plain Python, no Flask)."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime, timedelta

import pytest

from hivematrix.helm import charts

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
END = START + timedelta(hours=1)


def every(seconds: int, count: int, value: float | None = 5.0,
          start: datetime = START) -> list[tuple[datetime, float | None]]:
    return [(start + timedelta(seconds=seconds * n), value) for n in range(count)]


def parse(chart: charts.Chart) -> ElementTree.Element:
    return ElementTree.fromstring(str(chart.svg))


def coordinates(line: ElementTree.Element) -> list[tuple[float, float]]:
    return [tuple(map(float, pair.split(","))) for pair in line.get("points", "").split()]  # type: ignore[misc]


@pytest.mark.parametrize("samples", [
    [],
    every(30, 10, None),  # stopped all along
    every(30, 10, 5.0, start=START - timedelta(hours=2)),  # all before the window
])
def test_no_values_in_the_window_is_no_chart(samples: list[tuple[datetime, float | None]]) -> None:
    assert charts.line_chart(samples, start=START, end=END, label="CPU", unit="%") is None


def test_a_steady_series_is_one_line_inside_the_plot() -> None:
    chart = charts.line_chart(every(30, 120, 3.0), start=START, end=END, label="CPU % of core",
                              unit="%", floor=10)
    assert chart is not None
    assert (chart.latest, chart.peak, chart.average) == (3.0, 3.0, 3.0)
    svg = parse(chart)
    assert svg.tag == f"{SVG}svg" and svg.get("role") == "img"
    assert svg.get("aria-label") == "CPU % of core: latest 3.0 %, peak 3.0 %"
    [line] = svg.iter(f"{SVG}polyline")
    points = coordinates(line)
    assert len(points) == 120 == chart.points
    xs = [x for x, _y in points]
    assert xs == sorted(xs) and xs[0] >= charts.LEFT and xs[-1] <= charts.WIDTH - charts.RIGHT
    # 3 % on a 0-10 % scale: 30 % of the plot's height above its bottom.
    bottom = charts.HEIGHT - charts.BOTTOM
    height = charts.HEIGHT - charts.TOP - charts.BOTTOM
    assert {round(y, 1) for _x, y in points} == {round(bottom - 0.3 * height, 1)}
    labels = [text.text for text in svg.iter(f"{SVG}text")]
    assert labels[:3] == ["0.0 %", "5.0 %", "10.0 %"]
    assert labels[3:] == ["12:00", "12:30", "13:00"]


def test_a_day_of_samples_is_averaged_into_buckets() -> None:
    samples = [(START + timedelta(seconds=30 * n), float(n % 2) * 10) for n in range(2880)]
    chart = charts.line_chart(samples, start=START, end=START + timedelta(hours=24),
                              label="CPU", unit="%")
    assert chart is not None
    [line] = parse(chart).iter(f"{SVG}polyline")
    assert len(coordinates(line)) == charts.DEFAULT_BUCKETS == chart.points
    assert chart.peak == 10.0 and chart.average == 5.0
    assert len(str(chart.svg)) < 20_000
    # 2026-06-01 was a Monday.
    assert [text.text for text in parse(chart).iter(f"{SVG}text")][3:] == [
        "Mon 12:00", "Tue 00:00", "Tue 12:00"]


def test_a_stopped_service_breaks_the_line() -> None:
    samples = every(30, 40, 4.0) + every(30, 20, None, start=START + timedelta(minutes=20)) \
        + every(30, 40, 8.0, start=START + timedelta(minutes=30))
    chart = charts.line_chart(samples, start=START, end=END, label="Memory", unit="MB")
    assert chart is not None
    lines = list(parse(chart).iter(f"{SVG}polyline"))
    assert len(lines) == 2
    assert parse(chart).get("data-segments") == "2"
    assert chart.latest == 8.0 and chart.peak == 8.0


def test_a_gap_without_samples_is_not_bridged() -> None:
    # Helm was down for 20 minutes: no line claims values over that time.
    samples = every(30, 20, 4.0) + every(30, 20, 4.0, start=START + timedelta(minutes=30))
    chart = charts.line_chart(samples, start=START, end=END, label="CPU", unit="%")
    assert chart is not None and len(list(parse(chart).iter(f"{SVG}polyline"))) == 2


def test_a_lone_sample_is_a_dot() -> None:
    chart = charts.line_chart([(START + timedelta(minutes=5), 300.0)], start=START, end=END,
                              label="Memory", unit="MB")
    assert chart is not None
    svg = parse(chart)
    assert list(svg.iter(f"{SVG}polyline")) == []
    [dot] = svg.iter(f"{SVG}circle")
    assert float(dot.get("cy", "0")) == pytest.approx(charts.TOP + (1 - 300 / 500) *
                                                      (charts.HEIGHT - charts.TOP
                                                       - charts.BOTTOM), abs=0.1)
    assert [text.text for text in svg.iter(f"{SVG}text")][2] == "500 MB"


def test_text_is_escaped_and_nothing_is_styled() -> None:
    label = '<script>alert(1)</script>" onload="x'
    chart = charts.line_chart(every(30, 5), start=START, end=END, label=label, unit="<b>")
    assert chart is not None
    text = str(chart.svg)
    assert "<script>" not in text and "<b>" not in text and '" onload="' not in text
    assert "style" not in text and "javascript:" not in text
    svg = parse(chart)  # still well-formed XML
    assert svg.get("data-chart") == label
    assert svg.find(f"{SVG}title").text.startswith(label)  # type: ignore[union-attr]


@pytest.mark.parametrize(("value", "top"), [
    (0.0, 1.0), (0.3, 1.0), (1.0, 1.0), (1.2, 2.0), (2.1, 2.5), (3.0, 5.0), (7.0, 10.0),
    (10.0, 10.0), (101.0, 200.0), (612.0, 1000.0)])
def test_nice_ceiling(value: float, top: float) -> None:
    assert charts.nice_ceiling(value) == top


def test_values_are_formatted_for_people() -> None:
    assert charts.format_value(3.14159, "%") == "3.1 %"
    assert charts.format_value(312.4, "MB") == "312 MB"
    with pytest.raises(ValueError, match="after start"):
        charts.line_chart(every(30, 2), start=END, end=START, label="x", unit="")
