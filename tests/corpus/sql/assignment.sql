/*---
grain: none
columns:
  n: {type: INT64}
---*/
SELECT @n := 1 AS n
