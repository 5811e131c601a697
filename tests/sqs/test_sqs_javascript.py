"""The AWS SDK for JavaScript v3 (``@aws-sdk/client-sqs`` from npm, locked in tests/sqs/js/package-lock.json) under
Node against the SQS edge. ``.ci/run`` installs it with ``npm ci``."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

JS = Path(__file__).parent / "js"


@pytest.mark.timeout(300)
def test_the_javascript_sdk(sqs_server: Any) -> None:
    node = shutil.which("node")
    assert node, "node is needed (apt-get install nodejs)"
    if not (JS / "node_modules" / "@aws-sdk" / "client-sqs").exists():
        subprocess.run(["npm", "ci", "--prefix", str(JS), "--no-audit", "--no-fund", "--silent"], check=True,
                       timeout=600)
    access_key_id, secret = sqs_server.credentials()
    done = subprocess.run([node, str(JS / "sqs_client.mjs"), sqs_server.url, access_key_id, secret,
                           f"js{uuid.uuid4().hex[:8]}"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
