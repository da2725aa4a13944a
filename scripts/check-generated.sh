#!/usr/bin/env bash
# Fails when the checked-in generated code differs from a fresh generation
# from openapi/orderhub.yaml. Generates in a temporary mirror of the tree with
# the generator version pinned in go.mod: the working tree is left alone.
# The partner edition (generated/partner: orderhub.yaml and docs.html) is
# rebuilt by scripts/build-partner.sh into a temporary folder and compared
# byte for byte too.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/oapi-codegen" github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen
mkdir -p "$tmp/tree/openapi"
cp openapi/orderhub.yaml "$tmp/tree/openapi/"
status=0
for dir in generated/*/; do
  [ -f "$dir/cfg.yaml" ] || continue # not oapi-codegen's: generated/partner, below
  pkg=$(basename "$dir")
  out=$(awk '/^output:/ {print $2}' "$dir/cfg.yaml")
  mkdir -p "$tmp/tree/generated/$pkg"
  cp "$dir/cfg.yaml" "$tmp/tree/generated/$pkg/"
  (cd "$tmp/tree/generated/$pkg" && "$tmp/oapi-codegen" -config cfg.yaml ../../openapi/orderhub.yaml)
  if ! cmp -s "$tmp/tree/generated/$pkg/$out" "$dir$out"; then
    echo "check-generated: $dir$out is not what openapi/orderhub.yaml generates; run 'make generate' and commit" >&2
    diff -u "$dir$out" "$tmp/tree/generated/$pkg/$out" | head -40 >&2 || true
    status=1
  fi
done
scripts/build-partner.sh "$tmp/partner" >/dev/null
for f in orderhub.yaml docs.html; do
  if ! cmp -s "$tmp/partner/$f" "generated/partner/$f"; then
    echo "check-generated: generated/partner/$f is not what openapi/orderhub.yaml builds; run 'make generate' and commit" >&2
    [ "$f" = orderhub.yaml ] && { diff -u "generated/partner/$f" "$tmp/partner/$f" | head -40 >&2 || true; }
    status=1
  fi
done
[ "$status" -eq 0 ] && echo "check-generated: generated code and the partner edition match openapi/orderhub.yaml"
exit "$status"
