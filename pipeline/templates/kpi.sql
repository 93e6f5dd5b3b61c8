/*---
# One KPI: this query's result becomes the warehouse table `${name}`, one partition per ${grain_word}.
# Every header key is listed with its default; delete what you do not need. README.md → "Header keys".
# Check with: kpi check ${path}    See the SQL it runs: kpi render ${name}
name: ${name}                    # warehouse table name (default: the file name)
description: TODO one sentence on what this KPI means
owner: TODO-team                 # who to ask about it
tags: []                         # labels for `kpi list` and reports
enabled: true                    # false: kept, but not scheduled
grain: ${grain}                  # day | hour | week | month | none (whole-table snapshot)
${time_column_line}
timezone: Asia/Tokyo             # partition boundaries and schedule are read in this zone
# source_timezone: UTC           # what naive DATETIMEs in the source mean (default: timezone)
start: ${start}                  # earliest partition a backfill may touch
lookback: ${lookback}            # each scheduled run re-exports the last N partitions too
schedule: "${schedule}"          # 5-field cron, read in timezone
source: default                  # named connection in kpi.toml (e.g. a read replica)
format: parquet                  # parquet | csv
timeout: 10m                     # longest the query may run (at most 15m)
params: {}                       # e.g. {country: {type: STRING, default: JP}}, used as :country
columns:                         # every output column, in BigQuery types
${columns}
checks:
  min_rows: 0                    # fewer rows fail the export
  not_null: [${key}]             # columns that must never be NULL
  unique: [${key}]               # columns whose combination is unique in a partition
freshness: {warn_after: ${warn_after}, error_after: ${error_after}}
cluster_by: []                   # up to 4 columns BigQuery clusters on
# chart: {measures: [], by: x, top: 5}  # the report: which measures, a line per value of dimension x (top 5 + other)
# anomaly: {measures: [], by: [x], seasonality: [weekday, jp_holiday, month_end], sensitivity: medium, min_history: 28}
#   # score each load against the KPI's history (defaults shown; measures [] = every numeric column; day/hour grains)
zero_dates: error                # MySQL 0000-00-00 dates: error | null
invalid_utf8: error              # text that is not UTF-8: error | null
---*/
${sql}
