/*---
grain: none
columns:
  n: {type: INT64}
---*/
SELECT COUNT(*) FROM orders
