#!/usr/bin/env bash
# Generates TypeScript types from the partner edition with openapi-typescript
# (pinned in scripts/tools) and type-checks scripts/ts/signed-call.ts, a
# partner's signed call written against them, with tsc --noEmit. A contract
# change that breaks partners' generated code fails here. Offline once
# scripts/ensure-node-tools.sh has run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-node-tools.sh
source scripts/tools/env.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node_tool openapi-typescript generated/partner/orderhub.yaml --output "$tmp/orderhub.ts" >/dev/null
cp scripts/ts/signed-call.ts "$tmp/"
cat >"$tmp/tsconfig.json" <<JSON
{
  "compilerOptions": {
    "strict": true,
    "noEmit": true,
    "target": "es2022",
    "module": "nodenext",
    "moduleResolution": "nodenext",
    "lib": ["es2022", "dom"],
    "types": ["node"],
    "typeRoots": ["$tools_dir/node_modules/@types"],
    "noFallthroughCasesInSwitch": true,
    "noImplicitReturns": true
  },
  "files": ["signed-call.ts"]
}
JSON
(cd "$tmp" && node_tool tsc --project tsconfig.json)
echo "check-typescript: the partner edition's TypeScript types type-check scripts/ts/signed-call.ts"
