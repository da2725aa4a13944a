#!/usr/bin/env bash
# Installs the contract's npm tools (Spectral, Redocly CLI, Prism, openapi-typescript
# and TypeScript; pinned in
# scripts/tools/package-lock.json) when scripts/tools/node_modules is missing
# or older than the lockfile, and Node.js and npm through apt when they are
# missing. Does nothing (and says nothing) otherwise.
set -euo pipefail
cd "$(dirname "$0")/tools"
source ./env.sh

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-node-tools: node and npm are missing and apt-get is not available; install Node.js 20.19+ yourself" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "ensure-node-tools: installing nodejs and npm (Debian packages)" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
# Redocly CLI 2.77 needs Node 20.19+ (or 22.12+); Debian's own nodejs may be older.
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "ensure-node-tools: Node.js $(node --version) is too old: Redocly CLI needs 20.19 or newer" >&2
  exit 1
fi

stamp=node_modules/.package-lock.json # written by npm ci, last
if [ -f "$stamp" ] && [ ! "$stamp" -ot package-lock.json ] && [ ! "$stamp" -ot package.json ]; then
  exit 0
fi
echo "ensure-node-tools: npm ci in scripts/tools" >&2
# --ignore-scripts: nothing here needs an install script (one would only send analytics).
npm ci --ignore-scripts --no-audit --no-fund >/dev/null
