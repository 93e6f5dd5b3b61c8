/*---
grain: none
description: Users: per plan
columns:
  n: {type: INT64}
---*/
SELECT 1 AS n
