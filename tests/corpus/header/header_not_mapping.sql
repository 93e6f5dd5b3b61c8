/*---
- grain: none
- columns: {n: INT64}
---*/
SELECT 1 AS n
