/*---
time_column: sales_date
timezone: Asia/Tokio
columns:
  sales_date: {type: DATE}
  orders: {type: INT64}
---*/
SELECT DATE(created_at) AS sales_date, COUNT(*) AS orders
FROM orders
WHERE created_at >= :start AND created_at < :end
GROUP BY 1
