package orderhubtest

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/orderhub/orderhub/generated/models"
)

// Fault is a fault rule for Inject or AddFault: made by Answer, Delay,
// DropBeforeProcessing or DropAfterCommit for an operation (its
// operationId, such as "notifyOrderCompletion"), narrowed by its methods.
// The operator API's addFaultRule documents what each action does.
type Fault struct{ rule models.NewFaultRule }

// Answer answers code (with its usual message) without doing the work;
// nothing is stored, so the retry with the same requestId runs afresh.
func Answer(operation string, code models.ResultCode) Fault {
	return Fault{models.NewFaultRule{Operation: operation, Action: models.FaultActionAnswer, ResultCode: &code}}
}

// Delay waits d (at most a minute, to the millisecond), then processes the
// call normally.
func Delay(operation string, d time.Duration) Fault {
	ms := int(d / time.Millisecond)
	return Fault{models.NewFaultRule{Operation: operation, Action: models.FaultActionDelay, DelayMs: &ms}}
}

// DropBeforeProcessing closes the connection without an answer and without
// doing anything.
func DropBeforeProcessing(operation string) Fault {
	return Fault{models.NewFaultRule{Operation: operation, Action: models.FaultActionDropBeforeProcessing}}
}

// DropAfterCommit processes the call (a notification's effect and stored
// answer are committed), then closes the connection without the answer:
// the retry gets the stored one.
func DropAfterCommit(operation string) Fault {
	return Fault{models.NewFaultRule{Operation: operation, Action: models.FaultActionDropAfterCommit}}
}

// matching narrows f's match with set.
func (f Fault) matching(set func(m *models.FaultMatch)) Fault {
	m := models.FaultMatch{}
	if f.rule.Match != nil {
		m = *f.rule.Match
	}
	set(&m)
	f.rule.Match = &m
	return f
}

// ForRequestID acts only on calls whose body's requestId is id.
func (f Fault) ForRequestID(id string) Fault {
	return f.matching(func(m *models.FaultMatch) { m.RequestID = &id })
}

// ForOrder acts only on calls whose body's requestOrderId is id.
func (f Fault) ForOrder(id string) Fault {
	return f.matching(func(m *models.FaultMatch) { m.RequestOrderID = &id })
}

// ForTrade acts only on calls whose body's tradeId is id.
func (f Fault) ForTrade(id string) Fault {
	return f.matching(func(m *models.FaultMatch) { m.TradeID = &id })
}

// ForClient acts only on calls with Client-Id id.
func (f Fault) ForClient(id string) Fault {
	return f.matching(func(m *models.FaultMatch) { m.ClientID = &id })
}

// Times acts on the next n matching calls only (without it: every one,
// until the rule is deleted).
func (f Fault) Times(n int) Fault {
	f.rule.Times = &n
	return f
}

// WithMessage sends msg as an Answer's resultMessage.
func (f Fault) WithMessage(msg string) Fault {
	f.rule.ResultMessage = &msg
	return f
}

// Rule is the rule as the operator API takes it.
func (f Fault) Rule() models.NewFaultRule { return f.rule }

// AddFault puts f in force and returns the rule as orderhub holds it.
func (s *Server) AddFault(ctx context.Context, f Fault) (models.FaultRule, error) {
	res, err := s.Ops.AddFaultRuleWithResponse(ctx, f.rule)
	if err != nil {
		return models.FaultRule{}, err
	}
	if res.JSON201 == nil {
		return models.FaultRule{}, fmt.Errorf("adding fault rule: HTTP %d: %s", res.StatusCode(), res.Body)
	}
	return *res.JSON201, nil
}

// Inject is AddFault for a test: a refused rule fails tb.
func (s *Server) Inject(tb testing.TB, f Fault) models.FaultRule {
	tb.Helper()
	r, err := s.AddFault(tb.Context(), f)
	if err != nil {
		tb.Fatalf("orderhubtest: %v", err)
	}
	return r
}

// ClearFaults deletes every fault rule.
func (s *Server) ClearFaults(ctx context.Context) error {
	res, err := s.Ops.DeleteFaultRulesWithResponse(ctx)
	if err != nil {
		return err
	}
	if res.StatusCode() != http.StatusNoContent {
		return fmt.Errorf("deleting fault rules: HTTP %d: %s", res.StatusCode(), res.Body)
	}
	return nil
}
