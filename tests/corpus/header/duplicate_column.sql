/*---
grain: none
columns:
  orders: {type: INT64}
  Orders: {type: INT64}
---*/
SELECT COUNT(*) AS orders FROM orders
