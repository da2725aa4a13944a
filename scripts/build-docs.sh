#!/usr/bin/env bash
# Builds the contract's reference page, .orderhub/docs/index.html: one HTML
# file with Redoc's scripts and the contract inlined (--inlineBundle), so the
# page loads nothing from elsewhere when it opens. orderhub serves it at /docs
# (ORDERHUB_DOCS_FILE). Fails when the page names an external script, style,
# font or image.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-node-tools.sh
source scripts/tools/env.sh
root=$(pwd)
out="$root/.orderhub/docs/index.html"
mkdir -p "$(dirname "$out")"
tmp=$(mktemp "$(dirname "$out")/.index.XXXXXX")
log=$(mktemp)
trap 'rm -f "$tmp" "$log"' EXIT
if ! node_tool redocly build-docs "$root/openapi/orderhub.yaml" \
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
echo "build-docs: .orderhub/docs/index.html ($(($(wc -c <"$out") / 1024)) KiB)"
