#!/usr/bin/env bash
# build-partner.sh [DIR]: builds the partner edition of the contract into DIR
# (default generated/partner), both files checked in and embedded in the
# binary (generated/partner/embed.go):
#   orderhub.yaml  openapi/orderhub.yaml bundled by Redocly (the `partner` api
#                  of openapi/redocly.yaml): what is marked x-internal (the
#                  operator API, its security scheme, health, readiness and
#                  metrics) and the components only it used are removed;
#                  comments are not kept. Served at /openapi.yaml.
#   docs.html      its reference page (scripts/build-docs.sh), served at /docs.
# Both are deterministic: scripts/check-generated.sh (make check-generated)
# rebuilds them into a temporary folder and compares byte for byte.
# Run by make generate (go generate ./generated/...) and make docs.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-generated/partner}
scripts/ensure-node-tools.sh
source scripts/tools/env.sh
mkdir -p "$dir"
tmp=$(mktemp --suffix=.yaml "$dir/.orderhub.XXXXXX") # bundle takes the format from the extension
log=$(mktemp)
trap 'rm -f "$tmp" "$log"' EXIT
if ! node_tool redocly bundle partner --config openapi/redocly.yaml --output "$tmp" >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
# Nothing of the operator API may be left (x-internal forgotten on a new
# operator path, or the decorator off).
if grep -nE "^  /ops/|adminToken|x-internal" "$tmp" >&2; then
  echo "build-partner: the partner edition still holds the operator API (above): mark it x-internal in openapi/orderhub.yaml" >&2
  exit 1
fi
chmod 0644 "$tmp"
mv "$tmp" "$dir/orderhub.yaml"
echo "build-partner: $dir/orderhub.yaml ($(($(wc -c <"$dir/orderhub.yaml") / 1024)) KiB)"
scripts/build-docs.sh "$dir/orderhub.yaml" "$dir/docs.html"
