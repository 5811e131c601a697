"""Clients from the registries that do not fit the test virtualenv: an early-2023 boto3/botocore (the SQS query
protocol), the AWS CLI and Celery, each in a virtualenv of its own at the repository's root (``.venv-sqs-*``), made on
first use (`.ci/run` makes them before the tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: boto3 and botocore of March 2023: the last SQS model before the JSON protocol (late 2023) speaks query.
QUERY_CLIENT = ("boto3==1.26.90", "botocore==1.29.90")
AWS_CLI = ("awscli>=1.32",)
#: Celery on kombu's SQS transport (which needs pycurl: libcurl4-openssl-dev to build it where no wheel fits).
CELERY = ("celery>=5.3", "kombu[sqs]>=5.3")
VENVS = {"query": QUERY_CLIENT, "awscli": AWS_CLI, "celery": CELERY}


def venv(name: str) -> Path:
    """The virtualenv ``.venv-sqs-<name>`` with its packages (created when missing); returns its bin folder."""
    path = ROOT / f".venv-sqs-{name}"
    packages = VENVS[name]
    stamp = path / (".installed-" + "-".join(p.replace("=", "").replace(">", "") for p in packages))
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True, timeout=300)
        subprocess.run([str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", *packages], check=True,
                       timeout=600)
        stamp.touch()
    return path / "bin"


if __name__ == "__main__":  # .ci/run: python tests/sqs/oldclients.py query awscli celery
    for wanted in sys.argv[1:]:
        print(venv(wanted))
