/*---
grain: none
columns:
  n: {type: INT64}
---*/
SELECT 1 AS n FROM WHERE x = 1
