//go:build !goexperiment.boringcrypto

package buildinfo

// cryptoBuild: Go's own crypto.
const cryptoBuild = "go"
