/*---
grain: none
columns:
  n: {type: INT64}
---*/
UPDATE t SET n = 1
