/*---
grain: none
columns:
  n: {type: INT64}
---*/
INSERT INTO t (n) VALUES (1)
