#!/usr/bin/env bash
# The benchmark suite: bench/run.sh [--quick] [--profile] [...]; see docs/performance.md.
# Needs wrk and redis-server on PATH (apt-get install -y wrk redis-server); the full run also uses node and
# npm (BullMQ) and a RabbitMQ on 127.0.0.1:5672 (BENCH_RABBITMQ_URL), and skips a peer that is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m bench "$@"
