// Package ratelimit limits how often partners may call orderhub: a limit per
// Client-Id and a global ceiling over all callers, shared by every orderhub
// instance through Redis (Redis) or kept in the process (Memory, for a
// single instance without Redis). Both use the same algorithm, GCRA, the
// token bucket expressed as one timestamp per limit: a limit of "100/m"
// admits a burst of 100 calls and refills at 100 a minute.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrLimited is the error of a refused call: httpapi answers it with
// F/REQUEST_TRAFFIC_EXCEED_LIMIT.
var ErrLimited = errors.New("request traffic exceeds the limit")

// Limiter decides whether a caller may make one more call now. A call it
// allows is counted against every limit; a call it refuses is counted
// against none.
type Limiter interface {
	Allow(ctx context.Context, clientID string) (Decision, error)
}

// Scope names a limit.
type Scope string

const (
	PerClient Scope = "per-client"
	Global    Scope = "global"
)

// Decision is the answer of Allow.
type Decision struct {
	Allowed bool
	// Exceeded is the limit that refused the call: PerClient when both did.
	Exceeded Scope
	// RetryAfter is how long until the call would be allowed (0 if it is).
	RetryAfter time.Duration
}

// Err is nil for an allowed call, else an error wrapping ErrLimited that
// names the limit, for the logs.
func (d Decision) Err() error {
	if d.Allowed {
		return nil
	}
	return fmt.Errorf("%w: %s limit, retry after %s", ErrLimited, d.Exceeded, d.RetryAfter.Round(time.Millisecond))
}

// Limit is a rate with a burst: Rate calls per Period on average, and up to
// Burst calls at once when the caller has been quiet.
type Limit struct {
	Rate   int
	Period time.Duration // time.Second, time.Minute or time.Hour
	Burst  int
}

// Limits is the configuration of a limiter; a zero Limit is no limit.
type Limits struct {
	PerClient Limit
	Global    Limit
}

// Off reports whether no limit is set.
func (l Limits) Off() bool { return l.PerClient.IsZero() && l.Global.IsZero() }

// IsZero reports whether l is no limit.
func (l Limit) IsZero() bool { return l == Limit{} }

// Bounds of a Limit: the emission interval stays at least a microsecond
// (the resolution of Redis TIME) and the arithmetic far from overflow.
const (
	maxRate  = 1_000_000
	maxBurst = 1_000_000
)

var units = map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}

// ParseLimit reads "RATE/UNIT" or "RATE/UNIT,burst=N" (UNIT s, m or h):
// "100/s", "6000/m", "100/s,burst=200". The burst defaults to the rate.
// The empty string is the zero Limit: no limit.
func ParseLimit(s string) (Limit, error) {
	if s == "" {
		return Limit{}, nil
	}
	rate, rest, ok := strings.Cut(s, "/")
	if !ok {
		return Limit{}, errors.New("not of the form RATE/UNIT, such as 100/s")
	}
	unit, burst, hasBurst := strings.Cut(rest, ",")
	var l Limit
	var err error
	if l.Rate, err = strconv.Atoi(rate); err != nil || l.Rate < 1 || l.Rate > maxRate {
		return Limit{}, fmt.Errorf("rate %q is not a whole number from 1 to %d", rate, maxRate)
	}
	if l.Period, ok = units[unit]; !ok {
		return Limit{}, fmt.Errorf("unit %q is not s, m or h", unit)
	}
	l.Burst = l.Rate
	if hasBurst {
		n, found := strings.CutPrefix(burst, "burst=")
		if l.Burst, err = strconv.Atoi(n); !found || err != nil || l.Burst < 1 || l.Burst > maxBurst {
			return Limit{}, fmt.Errorf("%q is not burst=N with N a whole number from 1 to %d", burst, maxBurst)
		}
	}
	return l, nil
}

// String is the form ParseLimit reads.
func (l Limit) String() string {
	if l.IsZero() {
		return "off"
	}
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h"}[l.Period]
	if l.Burst == l.Rate {
		return fmt.Sprintf("%d/%s", l.Rate, unit)
	}
	return fmt.Sprintf("%d/%s,burst=%d", l.Rate, unit, l.Burst)
}

// interval is the time one call costs, in whole microseconds so that both
// implementations compute alike.
func (l Limit) interval() time.Duration {
	return (l.Period / time.Duration(l.Rate)).Truncate(time.Microsecond)
}

// window is how far ahead of now a limit's theoretical arrival time may run:
// a full burst.
func (l Limit) window() time.Duration {
	return l.interval() * time.Duration(l.Burst)
}

// check is one limit of a call: its scope, its limit and (Redis) its key.
type check struct {
	scope Scope
	limit Limit
	key   string
}

// checks lists the limits that apply to clientID, the caller's own first:
// that is the one reported when both refuse.
func (l Limits) checks(clientID string) []check {
	var cs []check
	if !l.PerClient.IsZero() {
		cs = append(cs, check{PerClient, l.PerClient, clientKey(clientID)})
	}
	if !l.Global.IsZero() {
		cs = append(cs, check{Global, l.Global, globalKey})
	}
	return cs
}
