/*---
grain: none
columns:
  n: {type: INT64}
---*/
SELECT GET_LOCK('kpi', 10) AS n
