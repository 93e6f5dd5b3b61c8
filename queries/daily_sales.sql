/*---
name: daily_sales
description: Orders and sales per JST day and status
owner: growth-team
grain: day
time_column: sales_date
timezone: Asia/Tokyo
start: 2024-01-01
lookback: 2
schedule: "0 6 * * *"
columns:
  sales_date: {type: DATE, description: JST calendar day}
  status:     {type: STRING, description: Order status (paid / refunded / cancelled)}
  orders:     {type: INT64, description: Number of orders}
  sales:      {type: NUMERIC, description: Sum of amount in JPY}
checks:
  min_rows: 1
  not_null: [sales_date, status]
  unique: [sales_date, status]
freshness: {warn_after: 30h, error_after: 54h}
anomaly: {measures: [orders, sales], by: [status]}
---*/
SELECT DATE(created_at) AS sales_date, status, COUNT(*) AS orders, SUM(amount) AS sales
FROM orders
WHERE created_at >= :start AND created_at < :end
GROUP BY 1, 2
