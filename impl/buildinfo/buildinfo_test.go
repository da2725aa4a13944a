package buildinfo

import (
	"runtime"
	"testing"
)

func TestRead(t *testing.T) {
	i := Read()
	if i.GoVersion != runtime.Version() || i.Version == "" || i.Revision == "" {
		t.Errorf("Read() = %+v", i)
	}
	if i.Crypto != "go" && i.Crypto != "boringcrypto" && i.Crypto != "fips140" {
		t.Errorf("crypto build %q", i.Crypto)
	}
}
