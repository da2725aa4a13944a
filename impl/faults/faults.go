// Package faults holds the scripted faults of a test instance: rules that
// make orderhub answer a partner call with a chosen result, late, or not at
// all, so that a caller's retry logic can be tested against it. Rules live
// in the process; the HTTP layer applies them (impl/httpapi).
package faults

import (
	"crypto/rand"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Action is what a rule does with a matching call.
type Action string

// The actions, as the contract names them (FaultAction).
const (
	// Answer sends a chosen result without doing the work; nothing is
	// stored, so a retry runs afresh.
	Answer Action = "answer"
	// Delay waits, then processes the call normally.
	Delay Action = "delay"
	// DropBeforeProcessing closes the connection without doing anything.
	DropBeforeProcessing Action = "dropBeforeProcessing"
	// DropAfterCommit processes the call, commits its effect and stored
	// answer, and closes the connection instead of answering.
	DropAfterCommit Action = "dropAfterCommit"
)

// MaxDelay is the longest Delay a rule may have (the contract's delayMs
// maximum).
const MaxDelay = 60 * time.Second

// Actions lists every action.
func Actions() []Action { return []Action{Answer, Delay, DropBeforeProcessing, DropAfterCommit} }

// Call is what a rule can match in a partner call: its operation, the
// caller, and the body's identifying fields ("" when absent).
type Call struct {
	Operation      string
	ClientID       string
	RequestID      string
	RequestOrderID string
	TradeID        string
}

// Match is a rule's condition: each field that is not "" must equal the
// call's.
type Match struct {
	ClientID       string
	RequestID      string
	RequestOrderID string
	TradeID        string
}

func (m Match) matches(c Call) bool {
	eq := func(want, got string) bool { return want == "" || want == got }
	return eq(m.ClientID, c.ClientID) && eq(m.RequestID, c.RequestID) &&
		eq(m.RequestOrderID, c.RequestOrderID) && eq(m.TradeID, c.TradeID)
}

// Rule is one scripted fault.
type Rule struct {
	ID        string
	Operation string
	Match     Match
	Action    Action
	// ResultCode and ResultMessage are Answer's result ("" message: the
	// code's usual text).
	ResultCode    string
	ResultMessage string
	// Delay is Delay's wait.
	Delay time.Duration
	// Times is how many calls the rule acts on (0: until deleted);
	// Remaining how many are left of them.
	Times, Remaining int
	// Injected counts the calls it acted on.
	Injected  int
	CreatedAt time.Time
}

// Rules are the rules in force, oldest first. Safe for concurrent use.
type Rules struct {
	now   func() time.Time
	count atomic.Int64 // len(list): the request path's check when no rule exists takes no lock
	mu    sync.Mutex
	list  []*Rule
}

// New returns an empty rule set on the clock now (nil: time.Now).
func New(now func() time.Time) *Rules {
	if now == nil {
		now = time.Now
	}
	return &Rules{now: now}
}

// Add puts r in force after the existing rules and returns it with its
// ID, CreatedAt and Remaining set. The caller has checked r against the
// contract.
func (rs *Rules) Add(r Rule) Rule {
	r.ID = "f-" + rand.Text()[:16]
	r.CreatedAt = rs.now().UTC()
	r.Remaining, r.Injected = r.Times, 0
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.list = append(rs.list, &r)
	rs.count.Store(int64(len(rs.list)))
	return r
}

// List returns copies of the rules in force, oldest first.
func (rs *Rules) List() []Rule {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := make([]Rule, len(rs.list))
	for i, r := range rs.list {
		out[i] = *r
	}
	return out
}

// Delete removes the rule id, if it is still in force.
func (rs *Rules) Delete(id string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.list = slices.DeleteFunc(rs.list, func(r *Rule) bool { return r.ID == id })
	rs.count.Store(int64(len(rs.list)))
}

// Clear removes every rule.
func (rs *Rules) Clear() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.list = nil
	rs.count.Store(0)
}

// Any reports whether any rule is in force: when none is, a call need not
// be read for matching.
func (rs *Rules) Any() bool { return rs.count.Load() > 0 }

// Take returns the oldest rule that matches c, counting the call against
// it (a rule whose Times are used up leaves), or false when none matches.
func (rs *Rules) Take(c Call) (Rule, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for i, r := range rs.list {
		if r.Operation != c.Operation || !r.Match.matches(c) {
			continue
		}
		r.Injected++
		if r.Times > 0 {
			r.Remaining--
			if r.Remaining == 0 {
				rs.list = slices.Delete(rs.list, i, i+1)
				rs.count.Store(int64(len(rs.list)))
			}
		}
		return *r, true
	}
	return Rule{}, false
}
