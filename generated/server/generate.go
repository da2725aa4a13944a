// Package server holds the echo server interfaces of orderhub's contract, the
// strict (typed) handler interface and the embedded spec.
package server

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen -config cfg.yaml ../../openapi/orderhub.yaml
