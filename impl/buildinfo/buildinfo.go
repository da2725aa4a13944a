// Package buildinfo says which build of orderhub is running: its version
// and commit, the Go version and the crypto build. It reads the binary's
// own build information; the Makefile's -ldflags fill Version and Revision
// where there is none (go run, go test).
package buildinfo

import (
	"crypto/fips140"
	"runtime"
	"runtime/debug"
)

// Set by the linker, the one way a build can name itself (read-only after
// start): go build -ldflags "-X github.com/orderhub/orderhub/impl/buildinfo.version=v1.2.3 -X ...revision=abc123".
var (
	version  string
	revision string
)

// Info describes a build.
type Info struct {
	Version   string // the module version, the -ldflags one, or "devel"
	Revision  string // the VCS commit (with "-dirty" for modified trees), or "unknown"
	GoVersion string // runtime.Version()
	Crypto    string // "boringcrypto", "fips140" (Go's FIPS 140-3 mode on) or "go"
}

// Read returns the running binary's Info.
func Read() Info {
	i := Info{Version: version, Revision: revision, GoVersion: runtime.Version(), Crypto: cryptoBuild}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		var rev string
		var dirty bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if i.Revision == "" && rev != "" {
			i.Revision = rev
			if dirty {
				i.Revision += "-dirty"
			}
		}
	}
	if i.Crypto == "go" && fips140.Enabled() {
		i.Crypto = "fips140"
	}
	if i.Version == "" {
		i.Version = "devel"
	}
	if i.Revision == "" {
		i.Revision = "unknown"
	}
	return i
}
