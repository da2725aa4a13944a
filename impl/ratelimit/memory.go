package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Memory is the Limiter of a single orderhub without Redis: the same GCRA
// as Redis's script, on the process's clock. golang.org/x/time/rate would
// do the arithmetic too, but checking two limits and spending on both only
// if both allow takes its reserve-then-cancel dance; one timestamp per key,
// as in Redis, is simpler and behaves the same by construction.
type Memory struct {
	limits Limits
	now    func() time.Time
	st     *memoryState
}

// memoryState is the limits' theoretical arrival times, by key.
type memoryState struct {
	mu  sync.Mutex
	tat map[string]time.Time
	// sweepAt is the size at which expired entries are next dropped.
	sweepAt int
}

var _ Limiter = (*Memory)(nil)

// NewMemory returns an in-process Limiter enforcing limits; now is the
// clock (nil: time.Now).
func NewMemory(limits Limits, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{limits: limits, now: now, st: &memoryState{tat: map[string]time.Time{}, sweepAt: 64}}
}

// Allow counts one call of clientID if every limit allows it.
func (m *Memory) Allow(_ context.Context, clientID string) (Decision, error) {
	cs := m.limits.checks(clientID)
	if len(cs) == 0 {
		return Decision{Allowed: true}, nil
	}
	s := m.st
	s.mu.Lock()
	defer s.mu.Unlock()
	now := m.now()
	s.sweep(now)
	tats := make([]time.Time, len(cs))
	var d Decision
	for i, c := range cs {
		tat := s.tat[c.key]
		if tat.Before(now) {
			tat = now
		}
		tats[i] = tat.Add(c.limit.interval())
		if over := tats[i].Sub(now) - c.limit.window(); over > 0 {
			if d.Exceeded == "" {
				d.Exceeded = c.scope
			}
			d.RetryAfter = max(d.RetryAfter, over)
		}
	}
	if d.Exceeded != "" {
		return d, nil
	}
	for i, c := range cs {
		s.tat[c.key] = tats[i]
	}
	return Decision{Allowed: true}, nil
}

// sweep drops the entries whose limit is full again (the keys Redis would
// have expired) once the map has doubled since the last sweep, so memory
// follows the callers active lately, at a cost spread over their calls.
func (s *memoryState) sweep(now time.Time) {
	if len(s.tat) < s.sweepAt {
		return
	}
	for k, tat := range s.tat {
		if !tat.After(now) {
			delete(s.tat, k)
		}
	}
	s.sweepAt = max(64, 2*len(s.tat))
}
