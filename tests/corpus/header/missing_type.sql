/*---
grain: none
columns:
  n: {description: Number of orders}
---*/
SELECT COUNT(*) AS n FROM orders
