#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each (default 30s), one
# after the other, and fails when any of them fails. A failing input is
# written to the package's testdata/fuzz/<target>/ by go test: commit it, and
# from then on plain `go test` runs it as a regression case.
#
# FUZZMINIMIZETIME (default 0: off) is go test's -fuzzminimizetime. Go
# minimizes every new interesting input too, which shrinks signed JSON bodies
# to a byte or two and, for FuzzRequest, halves the executions; set it (say
# 30s) to get a small failing input once a failure is known.
set -euo pipefail
cd "$(dirname "$0")/.."
GO="${GO:-go}"
FUZZTIME="${FUZZTIME:-30s}"
FUZZMINIMIZETIME="${FUZZMINIMIZETIME:-0}"

# The targets, as "package target" lines: go test -list prints a package's
# Fuzz functions, then its "ok <package>" line.
targets=$("$GO" test -list '^Fuzz' ./... | awk '
  /^Fuzz/ { names[n++] = $1; next }
  /^ok /  { for (i = 0; i < n; i++) print $2, names[i]; n = 0 }
')
if [ -z "$targets" ]; then
  echo "fuzz: no fuzz targets found" >&2
  exit 1
fi

failed=()
while read -r pkg target; do
  echo "fuzz: $target in $pkg for $FUZZTIME"
  if ! "$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZETIME" "$pkg" </dev/null; then
    failed+=("$pkg $target")
  fi
done <<<"$targets"

if [ ${#failed[@]} -gt 0 ]; then
  printf 'fuzz: FAILED %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "fuzz: all targets passed"
