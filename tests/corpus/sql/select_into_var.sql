/*---
grain: none
columns:
  n: {type: INT64}
---*/
SELECT COUNT(*) INTO @n FROM orders
