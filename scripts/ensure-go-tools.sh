#!/usr/bin/env bash
# Builds the Go tools of the checks (oasdiff, staticcheck; pinned in
# scripts/tools/go.mod, a module of their own so that their dependencies stay
# out of orderhub's go.mod) into scripts/tools/bin, each when its binary is
# missing or older than go.mod/go.sum. Quiet otherwise.
set -euo pipefail
cd "$(dirname "$0")/tools"
for pkg in github.com/oasdiff/oasdiff honnef.co/go/tools/cmd/staticcheck; do
  bin=bin/${pkg##*/}
  if [ -x "$bin" ] && [ ! "$bin" -ot go.mod ] && [ ! "$bin" -ot go.sum ]; then
    continue
  fi
  echo "ensure-go-tools: building ${pkg##*/} into scripts/tools/bin" >&2
  mkdir -p bin
  go build -o "$bin" "$pkg"
done
