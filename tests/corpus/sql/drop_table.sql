/*---
grain: none
columns:
  n: {type: INT64}
---*/
DROP TABLE t
