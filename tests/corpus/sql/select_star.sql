/*---
grain: none
columns:
  n: {type: INT64}
---*/
SELECT * FROM orders
