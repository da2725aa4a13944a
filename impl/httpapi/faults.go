package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/generated/server"
	"github.com/orderhub/orderhub/impl/faults"
	"github.com/orderhub/orderhub/openapi"
)

// injectFaults applies the fault rules to the partner calls that reach
// their handler: verified, allowed and valid. A call no rule matches goes
// on untouched; with no rule in force the body is not even read. It is in
// the request path only when faults are on (Config.Faults).
func injectFaults(rules *faults.Rules, seal sealer, injected *prometheus.CounterVec) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			f := factsOf(c)
			if f.op.Kind != openapi.Partner || !rules.Any() {
				return next(c)
			}
			var ids struct {
				RequestID      string `json:"requestId"`
				RequestOrderID string `json:"requestOrderId"`
				TradeID        string `json:"tradeId"`
			}
			_ = json.Unmarshal(f.body, &ids) // valid by now: these fields, where present, are strings
			rule, ok := rules.Take(faults.Call{
				Operation: f.op.ID, ClientID: f.clientID,
				RequestID: ids.RequestID, RequestOrderID: ids.RequestOrderID, TradeID: ids.TradeID,
			})
			if !ok {
				return next(c)
			}
			f.fault = string(rule.Action)
			injected.WithLabelValues(f.op.ID, string(rule.Action)).Inc()
			switch rule.Action {
			case faults.Answer:
				code := models.ResultCode(rule.ResultCode)
				r := models.Result{ResultStatus: statusOf(code), ResultCode: code, ResultMessage: rule.ResultMessage}
				if r.ResultMessage == "" {
					r.ResultMessage = usualMessage(code)
				}
				// Signed as any answer; never stored, so the retry runs afresh.
				a, err := seal.answer(f, http.StatusOK, r, models.ErrorResponse{Result: r})
				if err != nil {
					return err
				}
				return a.write(c.Response())
			case faults.Delay:
				return delayed(c, next, rule.Delay)
			case faults.DropBeforeProcessing:
				return drop(c)
			case faults.DropAfterCommit:
				return dropAfter(c, next)
			}
			return fmt.Errorf("fault rule %s: unknown action %q", rule.ID, rule.Action)
		}
	}
}

// delayed waits d, then runs the call with a whole request timeout of its
// own: a delay tests the caller's patience, not orderhub's deadline. A
// caller that leaves during the wait leaves the call unprocessed.
func delayed(c echo.Context, next echo.HandlerFunc, d time.Duration) error {
	f := factsOf(c)
	ctx, cancel := f.extendDeadline(d)
	defer cancel()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return drop(c) // the caller is gone, or the server is closing
	}
	c.SetRequest(c.Request().WithContext(ctx))
	return next(c)
}

// drop closes the connection without an answer. The log line and the
// metrics show status 0: nothing was sent.
func drop(c echo.Context) error {
	res := c.Response()
	conn, _, err := res.Hijack()
	if err != nil {
		// No connection to take (HTTP/2): abort the response instead,
		// which net/http does by resetting the stream.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
	res.Committed, res.Status = true, 0
	return nil
}

// dropAfter runs the call to its end (a notification commits its effect
// and stored answer), answer or error rendered into nothing, then drops
// the connection: the caller never hears what its retry will replay.
func dropAfter(c echo.Context, next echo.HandlerFunc) error {
	res := c.Response()
	w := res.Writer
	res.Writer = unsent{header: http.Header{}}
	if err := next(c); err != nil {
		c.Error(err) // notes the result for the log line, writes nowhere
	}
	res.Writer = w
	return drop(c)
}

// unsent is a ResponseWriter that sends nothing.
type unsent struct{ header http.Header }

func (u unsent) Header() http.Header       { return u.header }
func (unsent) Write(b []byte) (int, error) { return len(b), nil }
func (unsent) WriteHeader(int)             {}

// The operator API of the fault rules: 404 (INVALID_API) unless faults
// are on.

// AddFaultRule puts a rule in force after checking it against the
// contract: a partner operation, body fields it has, a result code it
// declares.
func (h *handlers) AddFaultRule(_ context.Context, req server.AddFaultRuleRequestObject) (server.AddFaultRuleResponseObject, error) {
	if h.faults == nil {
		return nil, errInvalidAPI
	}
	r, err := h.faultRule(*req.Body)
	if err != nil {
		return nil, err
	}
	return server.AddFaultRule201JSONResponse(faultOut(h.faults.Add(r))), nil
}

// ListFaultRules lists the rules in force, oldest first.
func (h *handlers) ListFaultRules(context.Context, server.ListFaultRulesRequestObject) (server.ListFaultRulesResponseObject, error) {
	if h.faults == nil {
		return nil, errInvalidAPI
	}
	rules := h.faults.List()
	out := models.FaultRuleList{FaultRules: make([]models.FaultRule, len(rules))}
	for i, r := range rules {
		out.FaultRules[i] = faultOut(r)
	}
	return server.ListFaultRules200JSONResponse(out), nil
}

// DeleteFaultRules removes every rule.
func (h *handlers) DeleteFaultRules(context.Context, server.DeleteFaultRulesRequestObject) (server.DeleteFaultRulesResponseObject, error) {
	if h.faults == nil {
		return nil, errInvalidAPI
	}
	h.faults.Clear()
	return server.DeleteFaultRules204Response{}, nil
}

// DeleteFaultRule removes one rule; one already gone is no error.
func (h *handlers) DeleteFaultRule(_ context.Context, req server.DeleteFaultRuleRequestObject) (server.DeleteFaultRuleResponseObject, error) {
	if h.faults == nil {
		return nil, errInvalidAPI
	}
	h.faults.Delete(req.FaultID)
	return server.DeleteFaultRule204Response{}, nil
}

// faultRule checks a new rule against the contract; the schema has
// checked each field on its own.
func (h *handlers) faultRule(b models.NewFaultRule) (faults.Rule, error) {
	op, ok := h.catalog.OperationByID(b.Operation)
	if !ok || op.Kind != openapi.Partner {
		return faults.Rule{}, &paramError{"operation: not a partner operation; one of " + strings.Join(h.catalog.IDs(openapi.Partner), ", ")}
	}
	r := faults.Rule{Operation: op.ID, Action: faults.Action(b.Action)}
	if m := b.Match; m != nil {
		r.Match = faults.Match{ClientID: deref(m.ClientID), RequestID: deref(m.RequestID), RequestOrderID: deref(m.RequestOrderID), TradeID: deref(m.TradeID)}
		for field, v := range map[string]string{"requestId": r.Match.RequestID, "requestOrderId": r.Match.RequestOrderID, "tradeId": r.Match.TradeID} {
			if v != "" && !slices.Contains(op.Fields, field) {
				return faults.Rule{}, &paramError{fmt.Sprintf("match.%s: %s has no %s", field, op.ID, field)}
			}
		}
	}
	if b.Times != nil {
		r.Times = *b.Times
	}
	only := func(field string, present bool) error {
		if present {
			return &paramError{fmt.Sprintf("%s: does not go with action %s", field, b.Action)}
		}
		return nil
	}
	switch r.Action {
	case faults.Answer:
		if b.ResultCode == nil {
			return faults.Rule{}, &paramError{"resultCode: action answer needs one"}
		}
		code := string(*b.ResultCode)
		declared := slices.DeleteFunc(slices.Clone(op.ResultCodes), func(c string) bool { return c == string(models.ResultCodeSuccess) })
		if !slices.Contains(declared, code) {
			why := fmt.Sprintf("%s does not answer %s", op.ID, code)
			if code == string(models.ResultCodeSuccess) {
				why = "SUCCESS comes only from doing the work (use delay or dropAfterCommit)"
			}
			return faults.Rule{}, &paramError{fmt.Sprintf("resultCode: %s; one of %s", why, strings.Join(declared, ", "))}
		}
		r.ResultCode, r.ResultMessage = code, deref(b.ResultMessage)
		return r, only("delayMs", b.DelayMs != nil)
	case faults.Delay:
		if b.DelayMs == nil {
			return faults.Rule{}, &paramError{"delayMs: action delay needs one"}
		}
		r.Delay = time.Duration(*b.DelayMs) * time.Millisecond
	}
	if err := only("resultCode", b.ResultCode != nil); err != nil {
		return faults.Rule{}, err
	}
	if err := only("resultMessage", b.ResultMessage != nil); err != nil {
		return faults.Rule{}, err
	}
	if r.Action != faults.Delay {
		return r, only("delayMs", b.DelayMs != nil)
	}
	return r, nil
}

// faultOut is a rule as the contract shows it.
func faultOut(r faults.Rule) models.FaultRule {
	out := models.FaultRule{
		FaultID: r.ID, Operation: r.Operation, Action: models.FaultAction(r.Action),
		Injected: r.Injected, CreatedAt: r.CreatedAt,
	}
	if m := r.Match; m != (faults.Match{}) {
		out.Match = &models.FaultMatch{ClientID: ref(m.ClientID), RequestID: ref(m.RequestID), RequestOrderID: ref(m.RequestOrderID), TradeID: ref(m.TradeID)}
	}
	if r.ResultCode != "" {
		code := models.ResultCode(r.ResultCode)
		out.ResultCode = &code
	}
	out.ResultMessage = ref(r.ResultMessage)
	if r.Delay > 0 {
		ms := int(r.Delay / time.Millisecond)
		out.DelayMs = &ms
	}
	if r.Times > 0 {
		out.Times, out.Remaining = &r.Times, &r.Remaining
	}
	return out
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// ref is s as an optional field: nil when empty.
func ref(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
