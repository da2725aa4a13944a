# Sourced by the scripts that run the contract tools (build-docs.sh,
# lint-spec.sh): the pinned npm tools of this folder, run offline, with every
# telemetry, update check and notice off.
export REDOCLY_TELEMETRY=off                # Redocly CLI usage reports
export REDOCLY_SUPPRESS_UPDATE_NOTICE=true  # Redocly CLI "new version" check
export SCARF_ANALYTICS=false                # Spectral's install-time analytics (never run: no install scripts)
export DO_NOT_TRACK=1
export NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
export NPM_CONFIG_LOGLEVEL=error            # npm's own notices are noise here

tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# node_tool runs a tool of scripts/tools/node_modules from the current folder
# (npx --no-install never fetches anything). Redocly CLI 2.77 prints a boxed
# notice that Node 20 support is ending on every run; it is dropped here (2.77
# runs on Node 20.19+; a later Redocly will need Node 22), everything else is
# passed on. The tool's exit status is kept.
node_tool() {
  local status=0
  { npx --no-install --prefix "$tools_dir" "$@" 2>&1 1>&3 3>&- | { grep -v -E '^[[:space:]]*[╔║╚]' || true; } >&2; } 3>&1 || status=$?
  return "$status"
}
