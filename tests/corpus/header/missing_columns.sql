/*---
time_column: sales_date
---*/
SELECT DATE(created_at) AS sales_date, COUNT(*) AS orders
FROM orders
WHERE created_at >= :start AND created_at < :end
GROUP BY 1
