"""The pure core: KPI spec, SQL gate, rendering, intervals. No sockets, no files, no environment variables."""
