"""The report's lineage block of a KPI section: which source columns each result column is computed from.

A reader of the report asks "where does this number come from?" before trusting it, and the application team
asks "which charts change if we rename ``orders.amount``?"; the answer is ``kpi lineage``, shown here beside the
columns so that nobody has to run a command to read it. Its own block, after the columns table, so the chart part
of the section (marks, captions) and this one change independently.
"""

from __future__ import annotations

from pipeline.report.kpi import Lineage
from pipeline.report.text import esc

NO_SOURCE = "no column: counted or constant"


def lineage_html(lineage: Lineage | None) -> str:
    """``<h3>Lineage</h3>``, a ``table.lineage`` (column → its sources) and the columns read; empty when unknown."""
    if lineage is None or not lineage.columns:
        return ""
    rows = "\n".join(
        f"<tr><td><code>{esc(column)}</code></td><td>"
        + (", ".join(f"<code>{esc(source)}</code>" for source in sources) or f'<span class="muted">{NO_SOURCE}</span>')
        + "</td></tr>"
        for column, sources in lineage.columns
    )
    reads = ", ".join(f"<code>{esc(read)}</code>" for read in lineage.reads)
    parts = [
        "<h3>Lineage</h3>",
        '<table class="lineage"><thead><tr><th>Column</th><th>Computed from</th></tr></thead>'
        f"<tbody>\n{rows}\n</tbody></table>",
    ]
    if reads:
        parts.append(f'<p class="reads muted">The query reads {reads}.</p>')
    return "\n".join(parts)
