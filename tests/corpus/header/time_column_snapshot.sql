/*---
grain: none
time_column: d
columns:
  d: {type: DATE}
---*/
SELECT MAX(DATE(created_at)) AS d FROM orders
