/*---
grain: none
columns:
  n: {type: INT64}
---*/
SELECT id AS n FROM orders WHERE SLEEP(10) = 0
