/*---
grain: none
columns:
  n: {type: INT64}
---*/
DELETE FROM t
