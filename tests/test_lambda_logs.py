"""No secret reaches a Lambda's log at DEBUG (pipeline/lambdas/__init__.py).

Each case runs in a child Python, the root logger at DEBUG as Lambda's runtime sets it for a function whose log
level is DEBUG, against the session's moto server on loopback: the clone's way of storing a secret
(``PutSecretValue``), the pipeline's way of reading one (:func:`pipeline.secrets.text_secret`), with a session
token in the environment as a role's. Without the handlers' package imported the log holds all three — what the
guard is for — and with it none, while botocore's other DEBUG lines still come through.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.aws import MotoServer

ROOT = Path(__file__).resolve().parent.parent
SECRET = "kpi-test-password-8d1f"
TOKEN = "kpi-test-session-token-7c2e"

CHILD = """
import logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
if sys.argv[1] == "guarded":
    import pipeline.lambdas
import boto3
from pipeline.errors import AlertError
from pipeline.secrets import text_secret

client = boto3.client("secretsmanager")
name = "kpi/test/" + sys.argv[2]
client.create_secret(Name=name, SecretString="placeholder")
client.put_secret_value(SecretId=name, SecretString=sys.argv[3])
print(text_secret(name, region=None, what="test", where="tests", error=AlertError))
"""


def _child(moto_server: MotoServer, guarded: bool, name: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": moto_server.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": TOKEN,
        "AWS_DEFAULT_REGION": "ap-northeast-1",
    }
    env.pop("AWS_PROFILE", None)
    argv = [sys.executable, "-c", CHILD, "guarded" if guarded else "plain", name, SECRET]
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)


@pytest.mark.infra
def test_without_the_guard_debug_logs_hold_the_secret_and_the_token(moto_server: MotoServer) -> None:
    child = _child(moto_server, guarded=False, name="plain")
    assert child.stdout.strip() == SECRET
    assert f'"SecretString":"{SECRET}"' in child.stderr.replace(" ", "")  # botocore.parsers / botocore.endpoint
    assert TOKEN in child.stderr  # botocore.auth's canonical request


@pytest.mark.infra
def test_a_lambda_at_debug_logs_neither_the_secret_nor_the_token(moto_server: MotoServer) -> None:
    child = _child(moto_server, guarded=True, name="guarded")
    assert child.stdout.strip() == SECRET  # read as before
    assert SECRET not in child.stderr
    assert TOKEN not in child.stderr
    assert "DEBUG:botocore.hooks:" in child.stderr  # botocore's other DEBUG lines still come through
