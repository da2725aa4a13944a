//go:build tools

// Package tools pins the Go command-line tools of the contract checks in a
// module of their own, so that their dependencies (oasdiff brings its own
// kin-openapi) never touch orderhub's go.mod. scripts/ensure-oasdiff.sh
// builds them into bin/.
package tools

import (
	_ "github.com/oasdiff/oasdiff"
)
