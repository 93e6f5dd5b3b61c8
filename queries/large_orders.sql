/*---
description: Paid orders at or above a threshold, per JST day and buyer country
owner: finance-team
tags: [finance]
grain: day
time_column: order_date
start: 2024-01-01
lookback: 3
schedule: "30 6 * * *"
params:
  min_amount: {type: NUMERIC, default: 50000, description: Smallest amount in JPY that counts as large}
columns:
  order_date:   {type: DATE, description: JST calendar day of the order}
  country:      {type: STRING, description: Buyer's country}
  large_orders: {type: INT64, description: Number of large orders}
  amount:       {type: NUMERIC, description: Their total amount in JPY}
cluster_by: [country]
---*/
-- `paid%` also matches statuses such as paid_partially; the % reaches MySQL unchanged.
SELECT DATE(o.created_at) AS order_date, u.country, COUNT(*) AS large_orders, SUM(o.amount) AS amount
FROM orders AS o
JOIN users AS u ON u.id = o.user_id
WHERE o.created_at >= :start AND o.created_at < :end
  AND o.amount >= :min_amount
  AND o.status LIKE 'paid%'
GROUP BY 1, 2
