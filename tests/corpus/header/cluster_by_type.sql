/*---
grain: none
cluster_by: [ratio]
columns:
  ratio: {type: FLOAT64}
---*/
SELECT AVG(amount) AS ratio FROM orders
