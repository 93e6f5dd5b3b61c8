/*---
grain: none
owner: &team growth-team
description: *team
columns:
  n: {type: INT64}
---*/
SELECT COUNT(*) AS n FROM orders
