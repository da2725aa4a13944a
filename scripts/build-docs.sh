#!/usr/bin/env bash
# build-docs.sh SPEC OUT: builds the reference page of the OpenAPI document
# SPEC into OUT, one HTML file with Redoc's scripts and the document inlined
# (--inlineBundle), so the page loads nothing from elsewhere when it opens.
# Fails when the page names an external script, style, font or image.
# scripts/build-partner.sh calls it for the partner edition's page,
# generated/partner/docs.html, which orderhub embeds and serves at /docs.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 SPEC OUT" >&2
  exit 2
fi
spec=$(realpath "$1")
out=$(realpath -m "$2")
cd "$(dirname "$0")/.."
scripts/ensure-node-tools.sh
source scripts/tools/env.sh
root=$(pwd)
mkdir -p "$(dirname "$out")"
tmp=$(mktemp "$(dirname "$out")/.docs.XXXXXX")
log=$(mktemp)
trap 'rm -f "$tmp" "$log"' EXIT
if ! node_tool redocly build-docs "$spec" \
  --config "$root/openapi/redocly.yaml" --inlineBundle --output "$tmp" >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
# Redoc's footer shows Redocly's logo, an image it loads from Redocly's CDN
# (there is no option to turn it off): the page carries a small inline
# wordmark instead. The checks below fail if the URL changes.
logo="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='60' height='16'%3E%3Ctext x='0' y='12' font-family='sans-serif' font-size='12' fill='%23888'%3ERedocly%3C/text%3E%3C/svg%3E"
sed -i -E "s#https://cdn\.redoc\.ly/redoc/logo-mini(-full)?\.svg#${logo}#g" "$tmp"
# What the browser would fetch by itself: src= and href= of scripts, styles,
# fonts, images and frames; src properties of the page's script (images it
# makes); ES module imports; url() and @import in styles.
# Links the reader may follow (<a href>) are fine.
q="[\"']"
external=$(grep -oiE "<(script|link|img|iframe|source|video|audio|embed|object)\b[^>]*(src|href|data)=$q?(https?:)?//[^\"' >]+|src[:=][^,;]{0,30}[\`\"'](https?:)?//[^\`\"']+|(import|from)[[:space:]]*\(?[[:space:]]*$q(https?:)?//[^\"']+|url\($q?(https?:)?//[^)]+\)|@import[^;]*(https?:)?//[^;]+" "$tmp" || true)
if [ -n "$external" ]; then
  echo "build-docs: the page would load external resources:" >&2
  echo "$external" | sort -u | head -20 >&2
  exit 1
fi
chmod 0644 "$tmp"
mv "$tmp" "$out"
echo "build-docs: $2 ($(($(wc -c <"$out") / 1024)) KiB)"
