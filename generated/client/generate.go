// Package client is the typed Go client of orderhub's contract. It imports
// neither echo nor kin-openapi, so downstream test suites can use it freely.
package client

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen -config cfg.yaml ../../openapi/orderhub.yaml
