/*---
grain: none
columns:
  n: {type: INT64}
---*/
SELECT 1 AS n /*!50000 , SLEEP(10) */
