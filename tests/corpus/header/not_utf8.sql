/*---
description: café
grain: none
columns:
  n: {type: INT64}
---*/
SELECT 1 AS n
