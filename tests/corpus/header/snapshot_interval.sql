/*---
grain: none
columns:
  orders: {type: INT64}
---*/
SELECT COUNT(*) AS orders FROM orders WHERE created_at < :end
