/*---
description: Users with at least one paid order in the JST week (Monday to Sunday)
owner: growth-team
tags: [retention]
grain: week
week_start: monday
time_column: week
start: 2024-01-01
lookback: 1
schedule: "0 6 * * 1"
columns:
  week:   {type: DATE, description: Monday the JST week starts on}
  buyers: {type: INT64, description: Distinct users with a paid order}
  orders: {type: INT64, description: Paid orders}
checks:
  min_rows: 1
  unique: [week]
freshness: {warn_after: 8d, error_after: 9d}
---*/
SELECT
  CAST(DATE_SUB(DATE(created_at), INTERVAL MOD(DATEDIFF(created_at, '1970-01-05'), 7) DAY) AS DATE) AS week,
  COUNT(DISTINCT user_id) AS buyers,
  COUNT(*) AS orders
FROM orders
WHERE status = 'paid'
  AND created_at >= :start AND created_at < :end
GROUP BY 1
