/*---
description: Registered users per country and plan, as of the last run (snapshot)
owner: growth-team
grain: none
schedule: "0 6 * * *"
columns:
  country: {type: STRING, description: ISO 3166-1 alpha-2 country code}
  plan:    {type: STRING, description: Subscription plan}
  users:   {type: INT64, description: Number of users}
chart: {by: plan}
checks:
  not_null: [country, plan]
  unique: [country, plan]
---*/
SELECT country, plan, COUNT(*) AS users
FROM users
GROUP BY country, plan
