/*---
time_column: sales_date
params:
  limit_yen: {type: INT64, default: lots}
columns:
  sales_date: {type: DATE}
  orders: {type: INT64}
---*/
SELECT DATE(created_at) AS sales_date, COUNT(*) AS orders
FROM orders
WHERE created_at >= :start AND created_at < :end
  AND amount >= :limit_yen
GROUP BY 1
