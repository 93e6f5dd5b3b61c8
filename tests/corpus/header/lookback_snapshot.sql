/*---
grain: none
lookback: 2
columns:
  n: {type: INT64}
---*/
SELECT COUNT(*) AS n FROM orders
