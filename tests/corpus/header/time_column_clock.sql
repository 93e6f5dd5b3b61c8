/*---
grain: day
time_column: ordered_at
timezone: Asia/Tokyo
columns:
  ordered_at: {type: TIMESTAMP}
  orders: {type: INT64}
---*/
SELECT MIN(created_at) AS ordered_at, COUNT(*) AS orders
FROM orders
WHERE created_at >= :start AND created_at < :end
GROUP BY DATE(created_at)
