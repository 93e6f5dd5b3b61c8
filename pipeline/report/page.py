"""The report's page: sections with badges and metadata, the stylesheet, the render check, the CSP, the document."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from datetime import datetime

from pipeline.report.charts import charts_html
from pipeline.report.kpi import ReportKpi
from pipeline.report.lineage import lineage_html
from pipeline.report.text import esc, format_moment


def freshness_class(freshness: str) -> str:
    """The badge's colour: ok (fresh), warn, bad (stale, error), never (never loaded), none (anything else)."""
    level = freshness.lower()
    if "error" in level:
        return "bad"
    if "warn" in level:
        return "warn"
    if level.startswith("stale"):
        return "bad"
    if level.startswith("never"):
        return "never"
    if level.startswith("fresh"):
        return "ok"
    return "none"


def _anchors(names: Iterable[str]) -> list[str]:
    used: set[str] = set()
    anchors = []
    for name in names:
        base = "kpi-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "unnamed")
        anchor, n = base, 2
        while anchor in used:
            anchor, n = f"{base}-{n}", n + 1
        used.add(anchor)
        anchors.append(anchor)
    return anchors


_UNKNOWN = "unknown"


def _badge(freshness: str, text: str | None = None) -> str:
    shown = text if text is not None else freshness or _UNKNOWN
    return f'<span class="badge {freshness_class(freshness)}">{esc(shown)}</span>'


def _section(kpi: ReportKpi, anchor: str) -> str:
    description = (
        f'<p class="description">{esc(kpi.description)}</p>'
        if kpi.description.strip()
        else '<p class="description muted">No description.</p>'
    )
    no_partition = f'<span class="muted">{"none" if kpi.time_column else "— (snapshot)"}</span>'
    meta = [
        ("Owner", esc(kpi.owner) if kpi.owner else '<span class="muted">—</span>'),
        ("Grain", esc(kpi.grain or "—")),
        ("Time column", f"<code>{esc(kpi.time_column)}</code>" if kpi.time_column else "— (snapshot)"),
        ("Last partition", esc(kpi.last_partition) if kpi.last_partition else no_partition),
        ("Rows in last partition" if kpi.time_column else "Rows", esc(f"{kpi.rows:,}")),
        ("Last loaded", esc(format_moment(kpi.last_loaded))),
    ]
    columns = "\n".join(
        f"<tr><td><code>{esc(c.name)}</code>"
        + (' <span class="tag">time</span>' if kpi.time_column and c.name == kpi.time_column else "")
        + f"</td><td><code>{esc(c.type)}</code></td><td>{esc(c.description)}</td></tr>"
        for c in kpi.columns
    )
    columns_table = (
        '<table class="columns"><thead><tr><th>Column</th><th>Type</th><th>Description</th></tr></thead>'
        f"<tbody>\n{columns}\n</tbody></table>"
        if kpi.columns
        else '<p class="muted">No columns declared.</p>'
    )
    return "\n".join(
        [
            f'<section class="kpi" id="{anchor}">',
            f'<header class="kpi-head"><h2>{esc(kpi.name)}</h2>{_badge(kpi.freshness)}</header>',
            description,
            '<dl class="meta">'
            + "".join(f"<div><dt>{label}</dt><dd>{value}</dd></div>" for label, value in meta)
            + "</dl>",
            charts_html(kpi),
            "<h3>Columns</h3>",
            columns_table,
            *filter(None, [lineage_html(kpi.lineage)]),
            "</section>",
        ]
    )


CSS = """
:root { --ink: #1f2328; --muted: #656d76; --line: #d8dee4; --soft: #f6f8fa; --accent: #2f6fb0; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: #eef1f4; color: var(--ink); line-height: 1.5;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans",
    "Liberation Sans", sans-serif; }
main { max-width: 900px; margin: 0 auto; padding: 28px 20px 48px; }
.page-head h1 { margin: 0 0 4px; font-size: 26px; line-height: 1.25; }
.page-head p { margin: 0; color: var(--muted); }
.summary { display: flex; flex-wrap: wrap; gap: 8px; margin: 14px 0 0; padding: 0; list-style: none; }
.card, .kpi, .toc { background: #fff; border: 1px solid var(--line); border-radius: 10px; }
.toc { margin: 22px 0; padding: 14px 20px; }
.toc h2 { margin: 0 0 6px; font-size: 13px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); }
.toc ol { margin: 0; padding-left: 22px; }
.toc li { margin: 5px 0; }
.toc a { font-weight: 600; }
.toc .muted { font-size: 13px; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
.kpi { margin: 22px 0; padding: 20px 22px 22px; break-inside: avoid; }
.kpi-head { display: flex; align-items: center; gap: 12px; flex-wrap: wrap; }
.kpi-head h2 { margin: 0; font-size: 21px; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas,
  "DejaVu Sans Mono", monospace; }
.description { margin: 8px 0 12px; white-space: pre-line; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 1px 10px; border-radius: 999px; font-size: 12.5px; font-weight: 600;
  border: 1px solid transparent; white-space: nowrap; }
.badge.ok { background: #dcf5e3; color: #17603a; border-color: #a8dfb9; }
.badge.warn { background: #fff3cd; color: #7a5200; border-color: #f0d58a; }
.badge.bad { background: #fde2e1; color: #a3262c; border-color: #f4b3b0; }
.badge.never { background: #fff; color: #a3262c; border-color: #f4b3b0; border-style: dashed; }
.badge.none { background: var(--soft); color: var(--muted); border-color: var(--line); }
.meta { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 8px 18px; margin: 0 0 16px;
  padding: 10px 14px; background: var(--soft); border-radius: 8px; }
@media (max-width: 560px) { .meta { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
.meta dt { font-size: 11.5px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); }
.meta dd { margin: 0; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
.charts { margin: 6px 0 4px; overflow-x: auto; }
.chart-note { margin: 0 0 4px; font-size: 13px; color: var(--muted); }
.chart-title { margin: 10px 0 0; font-size: 14px; }
.chart-caption { margin: 2px 0 10px; font-size: 13px; color: var(--muted); }
.chart .mark { fill: none; stroke: #c8414b; stroke-width: 2.5; pointer-events: all; }
.chart .expected { stroke: #c8414b; stroke-width: 6; stroke-opacity: .25; stroke-linecap: round; }
svg.chart { display: block; width: 100%; min-width: 600px; max-width: 800px; height: auto; margin: 4px 0 10px; }
.chart text { font-size: 11px; fill: #57606a; font-variant-numeric: tabular-nums; }
.chart .legend-name { font-size: 12.5px; font-weight: 600; fill: var(--ink); }
.chart .legend-note { font-size: 11.5px; font-weight: 400; fill: var(--muted); }
.chart .x-context { fill: var(--ink); font-weight: 600; }
.chart .bar-value { fill: var(--ink); }
.chart .gridline { stroke: #e6eaef; stroke-width: 1; }
.chart .gridline.vertical { stroke: #f0f2f5; }
.chart .gridline.zero, .chart .axis-line { stroke: #8c959f; stroke-width: 1; }
.chart .tick { stroke: #8c959f; }
.chart .series { stroke-width: 2; stroke-linejoin: round; stroke-linecap: round; }
.chart .series .dot { stroke: #fff; stroke-width: 1; }
.chart .bar { stroke: none; }
.chart .area { opacity: .09; stroke: none; }
.chart .hit { fill: #57606a; fill-opacity: 0; pointer-events: all; }
.chart .hit:hover { fill-opacity: .07; }
.no-data { margin: 4px 0 12px; padding: 22px; text-align: center; border: 1px dashed #c4ccd4; border-radius: 8px;
  background: var(--soft); }
details.data { margin: 0 0 8px; font-size: 13.5px; }
details.data summary { cursor: pointer; color: var(--accent); }
.scroll { max-height: 320px; overflow: auto; margin-top: 6px; border: 1px solid var(--line); border-radius: 6px; }
.scroll table { margin: 0; border: 0; }
.scroll th { position: sticky; top: 0; background: var(--soft); }
h3 { margin: 18px 0 6px; font-size: 15px; }
table { width: 100%; border-collapse: collapse; font-size: 13.5px; }
th, td { text-align: left; vertical-align: top; padding: 6px 10px; border-bottom: 1px solid var(--line); }
th { font-weight: 600; color: var(--muted); background: var(--soft); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.columns td:first-child { white-space: nowrap; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: .92em; }
.tag { font-size: 11px; padding: 0 6px; border-radius: 4px; background: #e7eefb; color: var(--accent); }
footer { margin-top: 28px; font-size: 13px; color: var(--muted); text-align: center; }
@media print {
  body { background: #fff; }
  .kpi, .toc { border: 0; padding: 0; }
  details.data, .hover { display: none; }
}
"""

# Measures every drawn chart in the browser and writes the result as JSON into <pre id="render-check"> (hidden),
# for the headless acceptance test. Listens for Content-Security-Policy violations too (an external load, a
# blocked style). The page needs none of it: the charts are SVG in the HTML.
RENDER_CHECK = """
(function () {
  "use strict";
  var violations = [];
  document.addEventListener("securitypolicyviolation", function (event) {
    violations.push(event.effectiveDirective + " " + (event.blockedURI || "inline"));
  });
  function box(element) {
    var r = element.getBoundingClientRect();
    return { width: r.width, height: r.height };
  }
  function measure() {
    var charts = [];
    document.querySelectorAll("svg.chart").forEach(function (svg) {
      var series = [];
      svg.querySelectorAll(".series").forEach(function (group) {
        var length = 0, shapes = 0;
        group.querySelectorAll("polyline, path, line, circle, rect").forEach(function (shape) {
          var b = shape.getBBox();
          if (b.width > 0 || b.height > 0) { shapes += 1; length += shape.getTotalLength(); }
        });
        var b = group.getBBox();
        series.push({ name: group.getAttribute("data-series"), length: length, shapes: shapes,
                      width: b.width, height: b.height, screen: box(group) });
      });
      var size = box(svg);
      charts.push({ kpi: svg.getAttribute("data-kpi"), measures: svg.getAttribute("data-measures"),
                    width: size.width, height: size.height, series: series,
                    marks: svg.querySelectorAll(".mark").length });
    });
    var tables = [];
    document.querySelectorAll("details.data").forEach(function (element) {
      tables.push({ kpi: element.getAttribute("data-kpi"), total: Number(element.getAttribute("data-total")),
                    rows: element.querySelectorAll("tbody tr").length,
                    summary: element.querySelector("summary").textContent.trim() });
    });
    var empty = [];
    document.querySelectorAll(".no-data").forEach(function (element) {
      var size = box(element);
      empty.push({ kpi: element.getAttribute("data-kpi"), text: element.textContent.trim(),
                   width: size.width, height: size.height });
    });
    var root = document.documentElement;
    var styled = getComputedStyle(root).getPropertyValue("--accent").trim() !== "";
    document.getElementById("render-check").textContent = JSON.stringify({
      charts: charts, empty: empty, tables: tables, violations: violations, styled: styled,
      page: { width: root.scrollWidth, height: root.scrollHeight }
    });
  }
  window.addEventListener("load", measure);
})();
"""


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


# Nothing may be loaded: no script, style, font or image but the inline ones named by their hashes.
CSP = (
    f"default-src 'none'; style-src {_csp_hash(CSS)}; script-src {_csp_hash(RENDER_CHECK)}; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)


def _summary(kpis: Sequence[ReportKpi]) -> str:
    counts: dict[str, int] = {}
    for kpi in kpis:
        counts[kpi.freshness] = counts.get(kpi.freshness, 0) + 1
    order = {"ok": 0, "warn": 1, "bad": 2, "never": 3, "none": 4}
    items = sorted(counts.items(), key=lambda item: (order[freshness_class(item[0])], item[0]))
    return (
        '<ul class="summary">'
        + "".join(f"<li>{_badge(freshness, f'{count} {freshness or _UNKNOWN}')}</li>" for freshness, count in items)
        + "</ul>"
    )


def render_report(kpis: Sequence[ReportKpi], *, title: str, generated_at: datetime, note: str = "") -> str:
    """The whole report as one HTML document (UTF-8 text; write it with ``encoding="utf-8"``).

    ``note`` is a line under the title, e.g. the clock freshness was judged by when it is not ``generated_at``.
    """
    anchors = _anchors(kpi.name for kpi in kpis)
    toc = "\n".join(
        f'<li><a href="#{anchor}">{esc(kpi.name)}</a> {_badge(kpi.freshness)}'
        + (f' <span class="muted">{esc(kpi.description.splitlines()[0])}</span>' if kpi.description.strip() else "")
        + "</li>"
        for kpi, anchor in zip(kpis, anchors, strict=True)
    )
    count = f"{len(kpis)} KPI" + ("" if len(kpis) == 1 else "s")
    body = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light">',
        f'<meta name="generator" content="kpi-pipeline report, {esc(format_moment(generated_at))}">',
        f"<title>{esc(title)}</title>",
        f"<style>{CSS}</style>",
        f"<script>{RENDER_CHECK}</script>",
        "</head>",
        "<body>",
        "<main>",
        '<header class="page-head">',
        f"<h1>{esc(title)}</h1>",
        f"<p>Generated {esc(format_moment(generated_at))} · {esc(count)}</p>",
        f'<p class="page-note">{esc(note)}</p>' if note else "",
        _summary(kpis) if kpis else "",
        "</header>",
        '<nav class="toc"><h2>Contents</h2>',
        f"<ol>\n{toc}\n</ol>" if kpis else '<p class="muted">No KPIs.</p>',
        "</nav>",
        *(_section(kpi, anchor) for kpi, anchor in zip(kpis, anchors, strict=True)),
        "<footer>kpi-pipeline · a static page: no server, no network; hover a chart for values.</footer>",
        "</main>",
        '<pre id="render-check" hidden></pre>',
        "</body>",
        "</html>",
    ]
    return "\n".join(part for part in body if part) + "\n"
