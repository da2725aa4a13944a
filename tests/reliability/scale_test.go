package reliability

import (
	"os"
	"testing"
)

// scale is how big the tests run. The default keeps `make test` (which runs
// every package under -race on 2 cores) within its budget; ORDERHUB_SOAK=1
// runs the same tests at soak size: more notifications, several fault and
// kill cycles. There are no separate soak tests, so nothing is ever
// reported as skipped.
type scale struct {
	name string

	faultRounds   int // Redis stopped, then hung: this many times each
	faultRequests int // notifications sent during each fault

	crashCycles  int // kill and recovery cycles per victim
	crashNotes   int // notifications streamed in each cycle
	crashKillAt  int // the kill comes with this many acknowledged answers
	crashSenders int // goroutines streaming

	burstRequestIDs int // distinct requestIds
	burstCopies     int // identical requests per requestId, sent at once
	burstParallel   int // bursts in flight together
}

func scaleOf(t *testing.T) scale {
	t.Helper()
	if os.Getenv("ORDERHUB_SOAK") == "1" {
		s := scale{
			name:          "soak (ORDERHUB_SOAK=1)",
			faultRounds:   5,
			faultRequests: 20,
			crashCycles:   5, crashNotes: 600, crashKillAt: 250, crashSenders: 16,
			burstRequestIDs: 2000, burstCopies: 50, burstParallel: 4,
		}
		t.Logf("scale: %s", s.name)
		return s
	}
	return scale{
		name:          "default (ORDERHUB_SOAK=1 for the soak size)",
		faultRounds:   1,
		faultRequests: 6,
		crashCycles:   1, crashNotes: 120, crashKillAt: 40, crashSenders: 8,
		burstRequestIDs: 200, burstCopies: 50, burstParallel: 4,
	}
}
