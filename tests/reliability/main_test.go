// Package reliability runs orderhub as a real process against a real
// redis-server and breaks things under it: Redis stopped or hung mid-run,
// orderhub or redis-server killed with SIGKILL during a stream of
// notifications, bursts of identical notifications from many goroutines.
// Each test counts what was sent, acknowledged, replayed and applied, and
// checks that every notification takes effect exactly once and that no
// acknowledged write is lost.
//
// ORDERHUB_SOAK=1 runs the same tests at soak size (more notifications,
// several fault and kill cycles); see scale_test.go.
package reliability

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	orderhubBinary.remove()
	os.Exit(code)
}

// orderhubBinary is the orderhub executable the tests start: built once
// per test binary, on first use, and removed by TestMain.
var orderhubBinary = &binary{}

type binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// get builds ./impl/cmd/orderhub from the module root (the first call) and
// returns the executable's path.
func (b *binary) get(t testing.TB) string {
	t.Helper()
	b.once.Do(func() {
		start := time.Now()
		b.path, b.err = b.build()
		t.Logf("built orderhub in %s", time.Since(start).Round(time.Millisecond))
	})
	if b.err != nil {
		t.Fatalf("building orderhub: %v", b.err)
	}
	return b.path
}

func (b *binary) build() (string, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if b.dir, err = os.MkdirTemp("", "orderhub-reliability-"); err != nil {
		return "", err
	}
	path := filepath.Join(b.dir, "orderhub")
	args := []string{"build", "-o", path}
	if raceEnabled {
		// Races in the real process are found too, and the packages come
		// from the build cache the race-enabled test build filled.
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./impl/cmd/orderhub")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./impl/cmd/orderhub in %s: %w\n%s", root, err, out)
	}
	return path, nil
}

func (b *binary) remove() {
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}
