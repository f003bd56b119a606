"""The dashboard: one offline HTML file whose charts render, with data and without JavaScript errors, in a real
headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipelines.reporting import dashboard
from tests.reporting.conftest import DAY, generated_world, store

HOSTILE_NAME = "</script><script>window.__pwned = 1</script>"

# Collects uncaught errors, rejected promises and console.error (vega-embed reports failures there) into the DOM,
# where --dump-dom can see them; and records whether a script smuggled in through an agent name ran.
ERROR_COLLECTOR = """<script>
(function () {
  function record(message) {
    var node = document.createElement('pre');
    node.className = 'js-error';
    node.textContent = String(message);
    (document.body || document.documentElement).appendChild(node);
  }
  window.addEventListener('error', function (e) { record(e.message || e); });
  window.addEventListener('unhandledrejection', function (e) { record(e.reason); });
  var original = console.error;
  console.error = function () {
    record(Array.prototype.join.call(arguments, ' '));
    original.apply(console, arguments);
  };
  window.addEventListener('load', function () {
    document.documentElement.setAttribute('data-pwned', String(window.__pwned === 1));
  });
})();
</script>"""


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    world = generated_world(agents=30, days=1, interval_s=600)
    world.tables["agent"][0]["user_name"] = HOSTILE_NAME
    folder = tmp_path_factory.mktemp("dashboard")
    source = store(world.arrow(), "sqlite", folder)
    return dashboard.write_dashboard(source, folder / "out" / "dashboard.html", DAY)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_the_page_is_self_contained(page):
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "vegaEmbed" in text and "window.vega=" in text.replace(" ", "")
    assert text.count('class="chart"') == len(dashboard.STATE_ORDER)  # five sections


def test_agent_names_cannot_close_the_page_script(page):
    assert HOSTILE_NAME not in page.read_text()


@pytest.mark.browser
def test_every_chart_renders_marks_in_headless_chromium_without_javascript_errors(page, tmp_path):
    browser = chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium); CI installs it")
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("<head>", "<head>\n" + ERROR_COLLECTOR, 1))
    profile = tmp_path / "profile"
    env = {**os.environ, "XDG_CONFIG_HOME": str(profile), "XDG_CACHE_HOME": str(profile)}
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )
    dom = result.stdout
    assert "</html>" in dom, result.stderr[-2000:]
    assert re.findall(r'<pre class="js-error">(.*?)</pre>', dom, re.S) == []
    assert 'data-pwned="false"' in dom  # a hostile agent name stayed data
    charts = re.split(r'<div class="chart[^"]*" id="chart-\d+"', dom)[1:]
    assert len(charts) == 5
    for chart in charts:
        svg = chart.split("</section>", 1)[0]
        assert "<svg" in svg
        marks = re.findall(r'<g class="mark-(?:rect|line)[^"]*role-mark[^"]*"[^>]*>(.*?)</g>', svg, re.S)
        assert marks and all(mark.count("<path") > 0 for mark in marks)

