/*---
time_column: sales_date
chart:
  measures: [orders, status]
  by: orders
columns:
  sales_date: {type: DATE}
  status: {type: STRING}
  orders: {type: INT64}
---*/
SELECT DATE(created_at) AS sales_date, status, COUNT(*) AS orders
FROM orders
WHERE created_at >= :start AND created_at < :end
GROUP BY 1, 2
