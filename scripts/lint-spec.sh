#!/usr/bin/env bash
# Lints the contract, openapi/orderhub.yaml:
#   1. Spectral with openapi/.spectral.yaml (spectral:oas and orderhub's own
#      rules); any error or warning fails;
#   2. Redocly CLI with openapi/redocly.yaml (its recommended rules); any error
#      or warning fails. A rule that does not apply somewhere is listed with
#      its reason in openapi/.redocly.lint-ignore.yaml;
#   3. oasdiff breaking --fail-on ERR against the contract at the latest git
#      tag, or at the previous commit when there is no tag
#      (ORDERHUB_SPEC_BASE=<rev> names another base); breaking changes made
#      on purpose are listed with their reason in openapi/.oasdiff-ignore.txt.
# Runs offline once scripts/ensure-node-tools.sh and scripts/ensure-go-tools.sh
# have run (this script calls both; they do nothing when all is in place).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-node-tools.sh
scripts/ensure-go-tools.sh
source scripts/tools/env.sh
spec=openapi/orderhub.yaml

echo "lint-spec: spectral"
node_tool spectral lint --ruleset openapi/.spectral.yaml --fail-severity=warn "$spec"

echo "lint-spec: redocly"
log=$(mktemp)
base_file=$(mktemp)
trap 'rm -f "$log" "$base_file"' EXIT
status=0
node_tool redocly lint --config openapi/redocly.yaml "$spec" >"$log" 2>&1 || status=$?
cat "$log"
if [ "$status" -ne 0 ]; then
  exit "$status"
fi
if grep -qE 'You have [0-9]+ warnings?' "$log"; then
  echo "lint-spec: redocly warned: fix the contract, or list the place with its reason in openapi/.redocly.lint-ignore.yaml" >&2
  exit 1
fi

echo "lint-spec: oasdiff breaking"
if [ -n "${ORDERHUB_SPEC_BASE:-}" ]; then
  base=$ORDERHUB_SPEC_BASE
elif base=$(git describe --tags --abbrev=0 2>/dev/null); then
  :
elif git rev-parse --verify --quiet HEAD~1 >/dev/null; then
  base=HEAD~1
else
  echo "lint-spec: no tag and no previous commit: nothing to compare the contract with; breaking-change check not run"
  exit 0
fi
if ! git show "$base:$spec" >"$base_file" 2>/dev/null; then
  echo "lint-spec: $spec does not exist at $base: nothing to compare with; breaking-change check not run"
  exit 0
fi
echo "lint-spec: comparing $spec with $base ($(git rev-parse --short "$base^{commit}"))"
# Breaking changes made on purpose are listed, each with its reason, in
# openapi/.oasdiff-ignore.txt.
scripts/tools/bin/oasdiff breaking --fail-on ERR --err-ignore openapi/.oasdiff-ignore.txt "$base_file" "$spec"
