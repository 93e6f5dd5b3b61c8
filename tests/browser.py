"""Headless Chromium (Debian's ``chromium`` package) for the report's acceptance test, with no Python driver.

Two runs of the browser on a local file: ``--dump-dom`` returns the DOM after the page's own render-check script
has measured every ``svg.chart`` and written JSON into ``<pre id="render-check">``; ``--screenshot`` then shoots
the whole page at its measured height. Nothing is loaded from the network: the page is a ``file://`` URL, its
Content-Security-Policy forbids external loads, host names resolve to nothing, and the features that phone home
(component updates, sync, safe browsing, metrics) are off.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL = "apt-get update && apt-get install -y chromium"
MAX_SCREENSHOT_HEIGHT = 16_000  # Chromium's own limit on one bitmap is 16,384 px

# Headless, no sandbox (the tests run as root in CI), no GPU, and nothing that talks to the network by itself.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--no-pings",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--virtual-time-budget=5000",
)


class BrowserError(RuntimeError):
    pass


def find_chromium() -> str:
    """The Chromium (or Chrome) executable on PATH or in /usr/bin; BrowserError saying how to install one."""
    for name in NAMES:
        found = shutil.which(name) or shutil.which(name, path="/usr/bin")
        if found:
            return found
    raise BrowserError(f"no Chromium found (looked for {', '.join(NAMES)}); install it: {INSTALL}")


@dataclass(frozen=True)
class SeriesDrawn:
    name: str
    length: float  # total length of the series' shapes (polylines, dots' circumference, bars' outline)
    shapes: int  # shapes with a non-empty bounding box
    width: float  # the series' bounding box in SVG units
    height: float


@dataclass(frozen=True)
class ChartDrawn:
    kpi: str
    measures: str
    width: float  # on screen, CSS pixels
    height: float
    series: tuple[SeriesDrawn, ...]
    marks: int = 0  # marked points (class="mark") drawn in the chart


@dataclass(frozen=True)
class EmptyShown:
    kpi: str
    text: str
    width: float
    height: float


@dataclass(frozen=True)
class TableShown:
    kpi: str
    total: int  # the row count the page states (data-total)
    rows: int  # rows the table really holds in the DOM
    summary: str


@dataclass(frozen=True)
class Rendered:
    charts: tuple[ChartDrawn, ...]
    empty: tuple[EmptyShown, ...]
    violations: tuple[str, ...]  # Content-Security-Policy violations the page saw (external or blocked loads)
    styled: bool  # the inline stylesheet applied
    page_height: int
    dom: str  # the serialised DOM after the page's scripts ran
    screenshot: Path | None
    tables: tuple[TableShown, ...] = ()  # the data tables, in page order


class _PreText(HTMLParser):
    def __init__(self, element_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.element_id = element_id
        self.inside = False
        self.text: list[str] = []
        self.found = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "pre" and ("id", self.element_id) in attrs:
            self.inside = self.found = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.text.append(data)


def element_text(dom: str, element_id: str) -> str | None:
    """The text of ``<pre id=element_id>`` in an HTML document, or None when there is none."""
    parser = _PreText(element_id)
    parser.feed(dom)
    parser.close()
    return "".join(parser.text) if parser.found else None


def _run(browser: str, args: list[str], profile: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "HOME": str(profile),  # Chromium writes ~/.pki and caches; keep them in the throwaway profile
        "XDG_CONFIG_HOME": str(profile / "config"),
        "XDG_CACHE_HOME": str(profile / "cache"),
    }
    command = [browser, *FLAGS, f"--user-data-dir={profile / 'data'}", *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment, check=False)
    except subprocess.TimeoutExpired as error:
        raise BrowserError(f"{browser} took over {timeout:g}s: {' '.join(command)}") from error
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-15:])
        raise BrowserError(f"{browser} exited {done.returncode}: {' '.join(command)}\n{tail}")
    return done


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def render_page(
    page: Path, *, screenshot: Path | None = None, width: int = 1280, timeout: float = 60.0, browser: str | None = None
) -> Rendered:
    """Open a local HTML file in headless Chromium; what its render check measured, and a full-page screenshot."""
    browser = browser or find_chromium()
    url = page.resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="kpi-chromium-") as scratch:
        profile = Path(scratch)
        dom = _run(browser, [f"--window-size={width},1000", "--dump-dom", url], profile, timeout).stdout
        text = element_text(dom, "render-check")
        if not text:
            raise BrowserError(f"the page wrote no render check into <pre id='render-check'> ({url})")
        check: dict[str, Any] = json.loads(text)
        height = int(_number(check.get("page", {}).get("height")))
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            shot_height = max(200, min(height, MAX_SCREENSHOT_HEIGHT))
            args = [f"--window-size={width},{shot_height}", f"--screenshot={screenshot.resolve()}", url]
            _run(browser, args, profile, timeout)
            if not screenshot.is_file() or screenshot.stat().st_size == 0:
                raise BrowserError(f"{browser} wrote no screenshot to {screenshot}")
    charts = tuple(
        ChartDrawn(
            kpi=str(chart.get("kpi")),
            measures=str(chart.get("measures")),
            width=_number(chart.get("width")),
            height=_number(chart.get("height")),
            series=tuple(
                SeriesDrawn(
                    name=str(series.get("name")),
                    length=_number(series.get("length")),
                    shapes=int(_number(series.get("shapes"))),
                    width=_number(series.get("width")),
                    height=_number(series.get("height")),
                )
                for series in chart.get("series", [])
            ),
            marks=int(_number(chart.get("marks"))),
        )
        for chart in check.get("charts", [])
    )
    empty = tuple(
        EmptyShown(
            kpi=str(item.get("kpi")),
            text=str(item.get("text")),
            width=_number(item.get("width")),
            height=_number(item.get("height")),
        )
        for item in check.get("empty", [])
    )
    return Rendered(
        charts=charts,
        empty=empty,
        violations=tuple(str(v) for v in check.get("violations", [])),
        styled=bool(check.get("styled")),
        page_height=height,
        dom=dom,
        screenshot=screenshot,
        tables=tuple(
            TableShown(
                kpi=str(item.get("kpi")),
                total=int(_number(item.get("total"))),
                rows=int(_number(item.get("rows"))),
                summary=str(item.get("summary")),
            )
            for item in check.get("tables", [])
        ),
    )
