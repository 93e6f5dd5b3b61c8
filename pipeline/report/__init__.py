"""The KPI report: one self-contained HTML file with charts per KPI, its description, owner, columns and freshness.

What the charts show is decided by the pure chart model (:mod:`pipeline.core.chart`: a series per dimension value,
each measure its own chart, every partition on the time axis, zero-based y axes, the KPI's zone named); this package
only draws that model, and writes the model's caption under the charts so the reader is told what they see.

Why static, inline SVG drawn here rather than a charting library — decided on evidence (measured on this machine,
December 2026, a 60-day line of one series drawn by each library in a scratch venv, never a dependency):

* plotly 7.1 draws in the browser with JavaScript only: a self-contained file embeds plotly.js, 4.8 MB per page,
  and shows no chart where scripts are off (mail clients, locked-down browsers, print to PDF);
* matplotlib 3.11 writes SVG offline (18 kB) but brings numpy and ~80 MB of packages, turns text into paths (not
  searchable, not selectable), and is not byte-for-byte deterministic without extra settings (ids, dates);
* pygal 3.1 writes SVG (33 kB) that loads its tooltip script from a CDN by default (the page's policy forbids it)
  and changes ids on each render;
* none of them knows the partitions' calendar (ticks on Mondays, month starts, the KPI's zone) — that logic stays
  ours either way, and it is the part that must be right. So the drawing stays here, pure and deterministic.

The file needs nothing else:

* nothing to run — the file opens from a ``file://`` URL, from an artifact store, from a shared drive;
* nothing to fetch — no CDN, web font or script is loaded (the page's Content-Security-Policy forbids it), so it
  works offline, behind a proxy, and still looks the same in a year, when a CDN URL may be gone;
* it survives being an email attachment or a CI artifact: one file, no folder of assets beside it;
* the charts are there with JavaScript disabled, because the SVG is in the HTML. The only script is a tiny optional
  one that measures the drawn charts and writes the result into a hidden ``<pre id="render-check">`` for the
  headless-browser acceptance test; the page needs none of it.

The output is deterministic — the same input gives the same bytes — so a report can be diffed, cached or
attached to a pull request without churn. The package is pure: it takes values and returns a string; the caller
reads the warehouse and writes the file. The charts drawn are marked ``<svg class="chart" data-kpi="NAME"
data-measures="MEASURE">``, each drawn series ``class="series"``, each marked point ``class="mark"``; an empty
KPI gets a ``class="no-data"`` message instead of a chart; the data table is ``<details class="data"
data-total="N">``; the lineage of its columns ``<table class="lineage">``. Only ``kpi demo`` imports it; no
Lambda handler does, and it needs nothing beyond the standard library (the zips carry these files with the rest of
``pipeline/``, unused).
"""

from pipeline.report.axes import Tick, x_ticks, y_ticks
from pipeline.report.kpi import Column, Lineage, ReportKpi
from pipeline.report.page import freshness_class, render_report
from pipeline.report.text import format_number, format_value

__all__ = [
    "Column",
    "Lineage",
    "ReportKpi",
    "Tick",
    "format_number",
    "format_value",
    "freshness_class",
    "render_report",
    "x_ticks",
    "y_ticks",
]
