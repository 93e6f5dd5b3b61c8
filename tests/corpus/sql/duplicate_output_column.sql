/*---
grain: none
columns:
  n: {type: INT64}
---*/
SELECT 1 AS n, 2 AS n
