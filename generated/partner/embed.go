// Package partner holds the partner edition of orderhub's contract, built
// from openapi/orderhub.yaml by scripts/build-partner.sh (make generate,
// make docs; make check-generated verifies it is fresh): the partner APIs
// and orderhub's own public endpoints, without the operator API, its
// security scheme, health, readiness and metrics (all marked x-internal in
// the source). orderhub serves it at /openapi.yaml, /openapi.json and /docs.
// Do not edit these files: edit the source and regenerate.
package partner

import _ "embed"

//go:generate bash ../../scripts/build-partner.sh

// Spec is the partner edition, Redocly's bundle of the source: YAML without
// the source's comments.
//
//go:embed orderhub.yaml
var Spec []byte

// Docs is the partner edition's reference page: one self-contained HTML
// file (Redoc, inlined), about 2.6 MB.
//
//go:embed docs.html
var Docs []byte
