// Package openapi holds orderhub's contract, openapi/orderhub.yaml, the one
// source the generated code and the validation middleware are built from.
// Its Catalog (Load) is the contract parsed and validated once, and answers
// what every layer asks of it: which operation a method and path are, who
// calls an endpoint (partner, operator or service), which are idempotent.
package openapi

import _ "embed"

// Spec is the contract as written, byte for byte.
//
//go:embed orderhub.yaml
var Spec []byte
