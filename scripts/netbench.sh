#!/usr/bin/env bash
# The network half of make bench: builds orderhub, the baselines and the
# load generator (tests/netbench, a module of its own), finds Prism, and
# runs the bench from tests/netbench so that its results land in
# tests/netbench/results/.
#
#   BENCH_TIME   measured time of each cell per round (default 2s)
#   CRYPTO       go (default) or boringcrypto: also build orderhub and the
#                sign-only baseline with GOEXPERIMENT=boringcrypto (cgo, gcc)
#                and run them beside the pure-Go build
#   BENCH_FLAGS  more flags for tests/netbench (-only, -profile, -rounds, -out, -compare)
#   LDFLAGS      the Makefile's build stamp for orderhub
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
BENCH_TIME=${BENCH_TIME:-2s}
CRYPTO=${CRYPTO:-go}
root=$(pwd)
bin=$(mktemp -d "${TMPDIR:-/tmp}/netbench-bin.XXXXXX")
trap 'rm -rf "$bin"' EXIT

echo "netbench: building orderhub, the baselines and the load generator" >&2
"$GO" build -ldflags "${LDFLAGS:-}" -o "$bin/orderhub" ./impl/cmd/orderhub
(cd tests/netbench && "$GO" build -o "$bin/netbench" . && "$GO" build -o "$bin/baseline" ./cmd/baseline)
args=(-orderhub "$bin/orderhub" -baseline "$bin/baseline" -time "$BENCH_TIME")

case "$CRYPTO" in
go) ;;
boringcrypto)
  # GOEXPERIMENT=boringcrypto links BoringSSL's FIPS module through cgo:
  # linux/amd64 and linux/arm64 only, with a C toolchain.
  if [ "$("$GO" env CGO_ENABLED)" != 1 ]; then
    echo "netbench: CRYPTO=boringcrypto needs cgo, and go env CGO_ENABLED is $("$GO" env CGO_ENABLED)" >&2
    exit 1
  fi
  if ! command -v "$("$GO" env CC)" >/dev/null 2>&1; then
    echo "netbench: CRYPTO=boringcrypto needs a C compiler; $("$GO" env CC) is not installed" >&2
    exit 1
  fi
  case "$("$GO" env GOOS)/$("$GO" env GOARCH)" in
  linux/amd64 | linux/arm64) ;;
  *)
    echo "netbench: CRYPTO=boringcrypto builds for linux/amd64 and linux/arm64 only, not $("$GO" env GOOS)/$("$GO" env GOARCH)" >&2
    exit 1
    ;;
  esac
  echo "netbench: building orderhub and the sign-only baseline with GOEXPERIMENT=boringcrypto" >&2
  GOEXPERIMENT=boringcrypto CGO_ENABLED=1 "$GO" build -ldflags "${LDFLAGS:-}" -o "$bin/orderhub-boring" ./impl/cmd/orderhub
  (cd tests/netbench && GOEXPERIMENT=boringcrypto CGO_ENABLED=1 "$GO" build -o "$bin/baseline-boring" ./cmd/baseline)
  args+=(-orderhub-boring "$bin/orderhub-boring" -baseline-boring "$bin/baseline-boring")
  ;;
*)
  echo "netbench: CRYPTO=$CRYPTO: want go or boringcrypto" >&2
  exit 2
  ;;
esac

# Prism's mock, pinned in scripts/tools, when Node.js is here: a benchmark
# runs without it rather than install Node.js.
prism="$root/scripts/tools/node_modules/.bin/prism"
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  if scripts/ensure-node-tools.sh && [ -x "$prism" ]; then
    args+=(-prism "$prism")
  else
    args+=(-prism-note "scripts/ensure-node-tools.sh could not install the pinned npm tools")
  fi
else
  args+=(-prism-note "node and npm are not installed (scripts/ensure-node-tools.sh installs them and Prism)")
fi

cd tests/netbench
# shellcheck disable=SC2086 # BENCH_FLAGS is a list of flags
"$bin/netbench" "${args[@]}" ${BENCH_FLAGS:-}
