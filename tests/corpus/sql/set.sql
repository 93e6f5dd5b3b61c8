/*---
grain: none
columns:
  n: {type: INT64}
---*/
SET @n = 1
