"""sorregistry.charts: round ticks, every value in a tooltip, hostile text escaped."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from sorregistry.charts import Series, bar_chart, hbar_chart, line_chart, nice_ticks

SVG = "{http://www.w3.org/2000/svg}"


def test_ticks_are_round_and_cover_the_top():
    assert nice_ticks(0) == [0.0, 1.0]
    assert nice_ticks(4) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert nice_ticks(23) == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
    assert nice_ticks(1000)[-1] == 1000.0
    assert nice_ticks(0.4) == [0.0, 1.0]  # counts: never a step below 1


def test_every_chart_is_well_formed_svg_with_a_tooltip_per_value():
    hostile = '<script>alert("x")</script> & "Ø"'
    charts = [
        bar_chart(hostile, ["a", hostile], [Series(hostile, [1, 2]), Series("b", [None, 3])],
                  y_label=hostile, x_label=hostile, stacked=True, chart_id="c1"),
        bar_chart("t", ["a", "b"], [Series("s", [1, 2]), Series("u", [3, 4])], y_label="y"),
        hbar_chart(hostile, [hostile, "b"], [Series("s", [1, 2])], x_label=hostile),
        line_chart(hostile, ["a", "b", "c"], [Series(hostile, [1, None, 3])], y_label="y"),
    ]
    for chart in charts:
        root = ET.fromstring(str(chart))  # parses: nothing unescaped broke it
        assert root.get("role") == "img"
        assert "<script" not in str(chart)
        titles = [t.text for t in root.iter(f"{SVG}title")]
        assert titles[0]  # the chart's own title first
    first = ET.fromstring(str(charts[0]))
    tooltips = [t.text for t in first.iter(f"{SVG}title")][1:]
    assert tooltips == [f"a: {hostile} 1", "a: b 0", f"{hostile}: {hostile} 2", f"{hostile}: b 3"]
    assert first.get("aria-labelledby") == "c1-title"
    # A missing value breaks the line: two single points, no polyline.
    line = ET.fromstring(str(charts[3]))
    assert len(list(line.iter(f"{SVG}circle"))) == 2
    assert not list(line.iter(f"{SVG}polyline"))
    assert re.search(r'viewBox="0 0 \d+ \d+"', str(charts[2]))
