/*---
grain: none
columns:
  n: {type: INT64}
---*/
CALL refresh_stats()
