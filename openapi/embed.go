// Package openapi holds orderhub's contract, openapi/orderhub.yaml, the one
// source the generated code and the validation middleware are built from.
package openapi

import _ "embed"

// Spec is the contract as written, byte for byte.
//
//go:embed orderhub.yaml
var Spec []byte
