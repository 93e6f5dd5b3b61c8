/*---
grain: none
format: csv
columns:
  id: {type: INT64}
  avatar: {type: BYTES}
---*/
SELECT id, avatar FROM users
