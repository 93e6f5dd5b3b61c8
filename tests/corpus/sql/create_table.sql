/*---
grain: none
columns:
  n: {type: INT64}
---*/
CREATE TABLE t AS SELECT 1 AS n
