// Package server holds the echo server interfaces of orderhub's contract and
// the strict (typed) handler interface. The contract itself is read from
// openapi (the catalog), not from a copy embedded here.
package server

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen -config cfg.yaml ../../openapi/orderhub.yaml
