"""AWS deployment of kpi-pipeline; ``python -m infra.package`` builds the Lambda zips."""
