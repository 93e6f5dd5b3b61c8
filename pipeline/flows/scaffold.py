"""``kpi new``: write a KPI file with every header key present and commented, ready to edit.

The template lives in ``pipeline/templates/kpi.sql``; what differs between grains (the time column, its type,
the example query) is filled in here, so that every new file passes ``kpi check`` before the analyst edits it.
"""

from __future__ import annotations

from datetime import date
from importlib import resources
from pathlib import Path
from string import Template

from pipeline.core.header_rules import name_hint
from pipeline.core.identifiers import KPI_NAME
from pipeline.core.intervals import Grain, week_start_sql
from pipeline.errors import UsageError

# grain → (time column, BigQuery type, MySQL expression, schedule, lookback, warn_after, error_after)
_BY_GRAIN: dict[Grain, tuple[str, str, str, str, int, str, str]] = {
    Grain.DAY: ("order_date", "DATE", "DATE(created_at)", "0 6 * * *", 2, "30h", "54h"),
    Grain.HOUR: (
        "order_hour",
        "DATETIME",
        "CAST(DATE_FORMAT(created_at, '%Y-%m-%d %H:00:00') AS DATETIME)",
        "10 * * * *",
        2,
        "2h",
        "6h",
    ),
    Grain.WEEK: ("order_week", "DATE", week_start_sql("created_at", 0), "0 6 * * 1", 1, "8d", "9d"),
    Grain.MONTH: (
        "order_month",
        "DATE",
        "CAST(DATE_FORMAT(created_at, '%Y-%m-01') AS DATE)",
        "0 7 1 * *",
        1,
        "32d",
        "35d",
    ),
}


def render_template(name: str, grain: Grain, today: date, path: str) -> str:
    """The text of a new KPI file called ``name`` at ``grain``."""
    template = Template(resources.files("pipeline.templates").joinpath("kpi.sql").read_text(encoding="utf-8"))
    if grain is Grain.NONE:
        return (
            template.substitute(
                name=name,
                path=path,
                grain="none",
                grain_word="run (a snapshot replaces the whole table)",
                time_column_line="# time_column:                  # none for a snapshot",
                start=today.isoformat(),
                lookback=0,
                schedule="0 6 * * *",
                columns="  status: {type: STRING, description: Order status}\n"
                "  orders: {type: INT64, description: Number of orders in this status}",
                key="status",
                warn_after="30h",
                error_after="54h",
                sql="SELECT status, COUNT(*) AS orders\nFROM orders\nGROUP BY status",
            )
            .replace("lookback: 0 ", "# lookback:  ")
            .replace(f"start: {today.isoformat()}", "# start:")
        )
    column, kind, expression, schedule, lookback, warn, error = _BY_GRAIN[grain]
    return template.substitute(
        name=name,
        path=path,
        grain=grain.value,
        grain_word=grain.value,
        time_column_line=f"time_column: {column:<18} # output column carrying the partition"
        + ("\nweek_start: monday               # or sunday: the day a week starts on" if grain is Grain.WEEK else ""),
        start=today.replace(day=1).isoformat(),
        lookback=lookback,
        schedule=schedule,
        columns=f"  {column}: {{type: {kind}, description: TODO what one {grain.value} means here}}\n"
        "  orders: {type: INT64, description: Number of orders}",
        key=column,
        warn_after=warn,
        error_after=error,
        sql=f"SELECT {expression} AS {column}, COUNT(*) AS orders\n"
        "FROM orders\n"
        "WHERE created_at >= :start AND created_at < :end\n"
        "GROUP BY 1",
    )


def new_kpi_file(folder: Path, name: str, grain: Grain, today: date) -> Path:
    """Create ``folder/name.sql``; never overwrites an existing file."""
    if not KPI_NAME.match(name):
        raise UsageError(f"'{name}' is not a valid KPI name", hint=name_hint(name))
    path = folder / f"{name}.sql"
    if path.exists():
        raise UsageError(f"{path} already exists", hint="choose another name, or edit the existing file")
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(render_template(name, grain, today, str(path)), encoding="utf-8")
    return path
