# The clone's masking as an ECS Fargate task (CloneMaskRunner=ecs; README: Cloning, large databases): the exporter's
# Lambda package — the clone-database code, pymysql, the rule files of masking/, Faker — on Python 3.12, with boto3
# (which Lambda's runtime provides and the package leaves out). Build it after `make package ARCH=…`:
#
#   docker build -f infra/clone-mask.Dockerfile --build-arg ARCH=x86_64 -t <account>.dkr.ecr.<region>.amazonaws.com/kpi-clone-mask .
#   docker push <account>.dkr.ecr.<region>.amazonaws.com/kpi-clone-mask   # then CloneMaskImage=<that URI>
#
# The state machine runs it as `mask RUN` (ContainerOverrides): python -m pipeline.lambdas.clone_database mask RUN.
FROM public.ecr.aws/docker/library/python:3.12-slim
ARG ARCH=x86_64
RUN pip install --no-cache-dir "boto3>=1.34" && useradd --uid 1000 --no-create-home mask
COPY build/lambda/exporter-${ARCH}.zip /tmp/package.zip
RUN python -m zipfile -e /tmp/package.zip /var/task && rm /tmp/package.zip
WORKDIR /var/task
ENV PYTHONPATH=/var/task KPI_CLONE_RULES=masking
USER mask
ENTRYPOINT ["python", "-m", "pipeline.lambdas.clone_database"]
