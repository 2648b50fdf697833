#!/usr/bin/env bash
# Runs the test suite once under each Keras backend; fails if any run fails.
# Usage: bash tests/run_all_backends.sh [pytest args...]
set -u
cd "$(dirname "$0")/.."
status=0
for backend in tensorflow jax torch; do
  echo "=== KERAS_BACKEND=$backend"
  KERAS_BACKEND=$backend python -m pytest tests "$@" || status=1
done
exit $status
