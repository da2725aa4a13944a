#!/usr/bin/env bash
# Lints both editions of the contract: the full one, openapi/orderhub.yaml
# (the source), and the partner edition built from it,
# generated/partner/orderhub.yaml (scripts/build-partner.sh):
#   1. Spectral with openapi/.spectral.yaml (spectral:oas and orderhub's own
#      rules), on each edition; any error or warning fails;
#   2. Redocly CLI with openapi/redocly.yaml (its recommended rules), on each
#      edition; any error or warning fails. A rule that does not apply
#      somewhere is listed with its reason in openapi/.redocly.lint-ignore.yaml
#      (one section per edition);
#   3. oasdiff breaking --fail-on ERR, each edition against its own previous
#      version at the base: the latest git tag, or the previous commit when
#      there is no tag (ORDERHUB_SPEC_BASE=<rev> names another base):
#        - the full contract against <base>:openapi/orderhub.yaml;
#        - the partner edition against <base>:generated/partner/orderhub.yaml,
#          skipped when the base has none. Never against the full contract:
#          the operator API, health and metrics are not the partners', and
#          leaving them out of their edition breaks nothing of theirs; what
#          this diff catches is a change partners see, such as a partner
#          operation marked x-internal (no change to the full contract).
#      Breaking changes made on purpose are listed with their reason in
#      openapi/.oasdiff-ignore.txt (both diffs read it).
# Runs offline once scripts/ensure-node-tools.sh and scripts/ensure-go-tools.sh
# have run (this script calls both; they do nothing when all is in place).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-node-tools.sh
scripts/ensure-go-tools.sh
source scripts/tools/env.sh
spec=openapi/orderhub.yaml
partner=generated/partner/orderhub.yaml
log=$(mktemp)
base_file=$(mktemp)
trap 'rm -f "$log" "$base_file"' EXIT

for edition in "$spec" "$partner"; do
  echo "lint-spec: spectral $edition"
  node_tool spectral lint --ruleset openapi/.spectral.yaml --fail-severity=warn "$edition"

  echo "lint-spec: redocly $edition"
  status=0
  node_tool redocly lint --config openapi/redocly.yaml "$edition" >"$log" 2>&1 || status=$?
  cat "$log"
  if [ "$status" -ne 0 ]; then
    exit "$status"
  fi
  if grep -qE 'You have [0-9]+ warnings?' "$log"; then
    echo "lint-spec: redocly warned: fix the contract, or list the place with its reason in openapi/.redocly.lint-ignore.yaml" >&2
    exit 1
  fi
done

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
for edition in "$spec" "$partner"; do
  if ! git show "$base:$edition" >"$base_file" 2>/dev/null; then
    echo "lint-spec: $edition does not exist at $base: nothing to compare with; breaking-change check not run for it"
    continue
  fi
  echo "lint-spec: comparing $edition with $base:$edition ($(git rev-parse --short "$base^{commit}"))"
  # Breaking changes made on purpose are listed, each with its reason, in
  # openapi/.oasdiff-ignore.txt.
  scripts/tools/bin/oasdiff breaking --fail-on ERR --err-ignore openapi/.oasdiff-ignore.txt "$base_file" "$edition"
done
