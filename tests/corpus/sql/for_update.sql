/*---
grain: none
columns:
  n: {type: INT64}
---*/
SELECT id AS n FROM orders FOR UPDATE
