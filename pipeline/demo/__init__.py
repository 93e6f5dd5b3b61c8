"""The demo source that the example KPIs in ``queries/`` read: a small shop (users, orders)."""
