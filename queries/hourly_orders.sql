/*---
description: Orders and distinct buyers per JST hour, for the operations dashboard
owner: ops-team
tags: [operations]
grain: hour
time_column: order_hour
start: 2024-01-01
lookback: 2
schedule: "10 * * * *"
columns:
  order_hour: {type: DATETIME, description: Start of the JST hour}
  orders:     {type: INT64, description: Orders created in the hour}
  buyers:     {type: INT64, description: Distinct users who ordered in the hour}
checks:
  unique: [order_hour]
freshness: {warn_after: 2h, error_after: 6h}
---*/
SELECT
  CAST(DATE_FORMAT(created_at, '%Y-%m-%d %H:00:00') AS DATETIME) AS order_hour,
  COUNT(*) AS orders,
  COUNT(DISTINCT user_id) AS buyers
FROM orders
WHERE created_at >= :start AND created_at < :end
GROUP BY 1
