"""kgrec report: the HTML opens in a real headless Chromium with no console errors, and its charts
and explanation pictures are rendered."""
from __future__ import annotations

import pytest

from conftest import run_cli


@pytest.mark.slow
def test_report_renders_without_console_errors(demo_run, tmp_path, browser):
    out = tmp_path / "report.html"
    res = run_cli("report", str(demo_run), "--out", str(out), "--users", "2")
    assert res.returncode == 0, res.stderr
    assert out.stat().st_size > 1_000_000  # plotly.js is embedded: the file is self-contained
    page = browser.new_page()
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "request",
        lambda r: problems.append(f"network request: {r.url}") if not r.url.startswith(("file:", "data:")) else None,
    )
    page.goto(out.as_uri())
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 6")
    charts = page.eval_on_selector_all(".chart .js-plotly-plot", "els => els.map(e => e.id)")
    assert charts == ["chart-metrics", "chart-curves", "chart-scores", "chart-sentiment"]
    # every chart drew data: bars, lines or histogram bars inside its SVG
    for cid in charts:
        drawn = page.eval_on_selector(
            f"#{cid}", "e => e.querySelectorAll('.trace, .bars, .point, path.js-line').length"
        )
        assert drawn > 0, cid
    pictures = page.eval_on_selector_all(".explanation .js-plotly-plot", "els => els.length")
    assert pictures == 2
    points = page.eval_on_selector(".explanation .js-plotly-plot", "e => e.querySelectorAll('.point').length")
    assert points >= 3  # user, product(s) and the nodes between them
    assert page.locator("#users table").count() == 2
    assert problems == []
