//go:build goexperiment.boringcrypto

package buildinfo

// cryptoBuild: built with GOEXPERIMENT=boringcrypto (cgo, BoringSSL).
const cryptoBuild = "boringcrypto"
