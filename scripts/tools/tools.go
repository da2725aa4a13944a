//go:build tools

// Package tools pins the Go command-line tools of the checks (oasdiff for
// the contract, staticcheck for the Go code) in a module of their own, so
// that their dependencies (oasdiff brings its own kin-openapi) never touch
// orderhub's go.mod. scripts/ensure-go-tools.sh builds them into bin/.
package tools

import (
	_ "github.com/oasdiff/oasdiff"
	_ "honnef.co/go/tools/cmd/staticcheck"
)
