"""The query protocol through a real early-2023 boto3/botocore in its own virtualenv (tests/sqs/oldclients.py)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from oldclients import venv

PROGRAM = Path(__file__).parent / "programs" / "query_protocol.py"


@pytest.mark.timeout(900)
def test_an_early_2023_botocore_over_the_query_protocol(sqs_server: Any) -> None:
    python = venv("query") / "python"
    access_key_id, secret = sqs_server.credentials()
    done = subprocess.run([str(python), str(PROGRAM), sqs_server.url, access_key_id, secret,
                           f"qp{uuid.uuid4().hex[:8]}"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
    assert "botocore 1.29.90" in done.stderr
