/*---
grain: none
columns:
  n: {type: INT64}
---*/
SELECT BENCHMARK(100000000, MD5('x')) AS n
