/*---
grain: hour
timezone: Asia/Kolkata
time_column: order_hour
columns:
  order_hour: {type: DATETIME}
  orders: {type: INT64}
---*/
SELECT CAST(DATE_FORMAT(created_at, '%Y-%m-%d %H:00:00') AS DATETIME) AS order_hour, COUNT(*) AS orders
FROM orders
WHERE created_at >= :start AND created_at < :end
GROUP BY 1
