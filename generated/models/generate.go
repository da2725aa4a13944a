// Package models holds the types of orderhub's contract, shared by the server
// and the client packages.
package models

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen -config cfg.yaml ../../openapi/orderhub.yaml
