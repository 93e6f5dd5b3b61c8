/*---
grain: none
columns:
  n: {type: INT64}
---*/
SELECT LENGTH(LOAD_FILE('/etc/passwd')) AS n
