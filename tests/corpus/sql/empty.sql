/*---
grain: none
columns:
  n: {type: INT64}
---*/
-- nothing here yet
