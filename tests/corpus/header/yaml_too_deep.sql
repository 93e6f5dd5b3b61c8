/*---
grain: none
tags: [[[[[[[[[[[[[[[[[[[[x]]]]]]]]]]]]]]]]]]]]
columns:
  n: {type: INT64}
---*/
SELECT COUNT(*) AS n FROM orders
