"""A consumer process that the fault tests kill with SIGKILL while it holds leases.

    python victim.py BASE_URL KEY QUEUE OUT_FILE VISIBILITY_SECONDS

It consumes until it has leased at least one message, writes each delivery as one JSON line to OUT_FILE
(flushed, so it survives the kill), then holds the leases without acking until it is killed. The checker
then requires every one of those messages to be delivered again after its lease, to another consumer.
"""

from __future__ import annotations

import json
import sys
import time

import httpx


def main(base_url: str, key: str, queue: str, out_file: str, visibility: str) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    body = {"queue": queue, "max_messages": 10, "visibility_timeout": float(visibility), "wait_seconds": 1}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client, open(out_file, "a") as out:
        while True:
            try:
                response = client.post("/v1/queue/consume", json=body)
            except httpx.HTTPError:
                time.sleep(0.1)
                continue
            if response.status_code != 200 or not response.json()["messages"]:
                time.sleep(0.05)
                continue
            for message in response.json()["messages"]:
                line = {"pid": message["payload"]["id"], "message_id": message["message_id"],
                        "attempts": message["attempts"]}
                out.write(json.dumps(line) + "\n")
            out.flush()
            break
    while True:  # hold the leases until killed
        time.sleep(60)


if __name__ == "__main__":
    main(*sys.argv[1:6])
