/*---
description: Users with at least one paid order in the JST month
owner: growth-team
tags: [retention]
grain: month
time_column: month
start: 2024-01-01
lookback: 1
schedule: "0 7 1 * *"
columns:
  month:         {type: DATE, description: First day of the JST month}
  active_buyers: {type: INT64, description: Distinct users with a paid order}
  sales:         {type: NUMERIC, description: Paid amount in JPY}
checks:
  min_rows: 1
  unique: [month]
---*/
SELECT
  CAST(DATE_FORMAT(created_at, '%Y-%m-01') AS DATE) AS month,
  COUNT(DISTINCT user_id) AS active_buyers,
  SUM(amount) AS sales
FROM orders
WHERE status = 'paid'
  AND created_at >= :start AND created_at < :end
GROUP BY 1
