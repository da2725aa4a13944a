#!/usr/bin/env bash
# Builds oasdiff (pinned in scripts/tools/go.mod, a module of its own so that
# its dependencies stay out of orderhub's go.mod) into scripts/tools/bin when
# the binary is missing or older than go.mod/go.sum. Quiet otherwise.
set -euo pipefail
cd "$(dirname "$0")/tools"
bin=bin/oasdiff
if [ -x "$bin" ] && [ ! "$bin" -ot go.mod ] && [ ! "$bin" -ot go.sum ]; then
  exit 0
fi
echo "ensure-oasdiff: building oasdiff into scripts/tools/bin" >&2
mkdir -p bin
go build -o "$bin" github.com/oasdiff/oasdiff
