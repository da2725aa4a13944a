package contract

import (
	"bufio"
	"bytes"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/openapi"
	"github.com/orderhub/orderhub/tests/testkit"
)

// faultEnvs runs test on orderhub with fault rules on, over the in-memory
// store and over Redis.
func faultEnvs(t *testing.T, test func(t *testing.T, e *env)) {
	for name, opts := range map[string][]envOption{
		"memory": {withMemoryStore(), withFaults()},
		"redis":  {withFaults()},
	} {
		if name == "memory" && clusterMode() {
			continue // the memory store does not depend on the Redis mode: the single-node run covers it
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, newEnv(t, opts...))
		})
	}
}

// addFault puts rule in force through the operator API.
func (e *env) addFault(rule models.NewFaultRule) models.FaultRule {
	e.t.Helper()
	res, err := e.c.AddFaultRuleWithResponse(e.ctx(), rule, admin)
	if err != nil {
		e.t.Fatalf("addFaultRule: %v", err)
	}
	if res.JSON201 == nil {
		e.t.Fatalf("addFaultRule: HTTP %d %s", res.StatusCode(), res.Body)
	}
	return *res.JSON201
}

// faultRules lists the rules in force.
func (e *env) faultRules() []models.FaultRule {
	e.t.Helper()
	res, err := e.c.ListFaultRulesWithResponse(e.ctx(), admin)
	if err != nil || res.JSON200 == nil {
		e.t.Fatalf("listFaultRules: %v %v", err, res)
	}
	return res.JSON200.FaultRules
}

// metric reads one series of /metrics (0 when absent).
func (e *env) metric(series string) float64 {
	e.t.Helper()
	res, err := e.c.GetMetricsWithResponse(e.ctx())
	if err != nil || res.StatusCode() != http.StatusOK {
		e.t.Fatalf("/metrics: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(res.Body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				e.t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	return 0
}

// idempotentOps are the contract's notifications, sorted.
func idempotentOps(t *testing.T) []string {
	t.Helper()
	cat, err := openapi.Load()
	if err != nil {
		t.Fatal(err)
	}
	return cat.IdempotentIDs()
}

// audit is a notifyDeliveryAuditResult body accepting batch B-1.
func audit(requestID, tradeID string) models.NotifyDeliveryAuditResultRequest {
	return models.NotifyDeliveryAuditResultRequest{RequestID: requestID, TradeID: tradeID, DeliveryBatchID: "B-1", DeliveryAuditStatus: models.DeliveryAuditStatusAccept}
}

func ptr[T any](v T) *T { return &v }

func TestFaultsAreOffByDefault(t *testing.T) {
	e := newEnv(t, withMemoryStore())
	ctx := e.ctx()
	var statuses []int
	add, err := e.c.AddFaultRuleWithResponse(ctx, models.NewFaultRule{Operation: opInquire.id, Action: models.FaultActionDropBeforeProcessing}, admin)
	if err == nil {
		statuses = append(statuses, add.StatusCode())
	}
	list, err := e.c.ListFaultRulesWithResponse(ctx, admin)
	if err == nil {
		statuses = append(statuses, list.StatusCode())
		if list.JSON404 == nil || list.JSON404.Result.ResultCode != models.ResultCodeInvalidAPI {
			t.Errorf("listFaultRules with faults off: %s, want the INVALID_API envelope", list.Body)
		}
	}
	del, err := e.c.DeleteFaultRulesWithResponse(ctx, admin)
	if err == nil {
		statuses = append(statuses, del.StatusCode())
	}
	one, err := e.c.DeleteFaultRuleWithResponse(ctx, "f-1", admin)
	if err == nil {
		statuses = append(statuses, one.StatusCode())
	}
	if want := []int{404, 404, 404, 404}; !slices.Equal(statuses, want) {
		t.Errorf("fault endpoints with faults off: %v, want %v", statuses, want)
	}
	// The request path has no fault step: nothing counts faults.
	res, err := e.c.GetMetricsWithResponse(ctx)
	if err != nil || strings.Contains(string(res.Body), "orderhub_faults_injected_total") {
		t.Errorf("/metrics with faults off has orderhub_faults_injected_total (err %v)", err)
	}
	// And the operator token still guards them.
	if r, err := e.c.ListFaultRulesWithResponse(ctx); err != nil || r.StatusCode() != http.StatusUnauthorized {
		t.Errorf("listFaultRules without a token: %v %v, want 401", err, r.StatusCode())
	}
}

// An injected answer is signed (the conformance transport checks every
// answer's signature) and stored nowhere: the retry with the same
// requestId runs afresh, exactly as after a real U.
func TestFaultAnswerIsSignedAndNotStored(t *testing.T) {
	faultEnvs(t, func(t *testing.T, e *env) {
		order := e.newOrder(models.OrderStatusPreparing)
		req := completion(uid("req"), order)
		rule := e.addFault(models.NewFaultRule{
			Operation: opCompletion.id, Action: models.FaultActionAnswer,
			Match:      &models.FaultMatch{RequestID: &req.RequestID},
			ResultCode: ptr(models.ResultCodeUnknownException), Times: ptr(1),
		})
		if rule.Remaining == nil || *rule.Remaining != 1 || rule.Injected != 0 || rule.FaultID == "" {
			t.Errorf("rule as added: %+v", rule)
		}
		// Another requestId of the same order is not matched.
		other := e.newOrder(models.OrderStatusReady)
		e.call(opCompletion, completion(uid("req"), other)).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")

		r := e.call(opCompletion, req)
		r.wantResult(t, http.StatusOK, models.ResultStatusUnknown, "UNKNOWN_EXCEPTION")
		if r.header.Get("Signature") == "" {
			t.Error("the injected answer is not signed")
		}
		if got := e.orderStatus(order); got != models.OrderStatusPreparing {
			t.Errorf("after the injected U the order is %s: the work was done", got)
		}
		if commits, _ := e.counting.Totals(); commits != 1 { // the other order's completion only
			t.Errorf("%d commits after the injected U, want 1 (the other request's)", commits)
		}
		if rules := e.faultRules(); len(rules) != 0 {
			t.Errorf("a rule with times 1 stays after its call: %+v", rules)
		}
		before := e.effects()
		e.call(opCompletion, req).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
		if got := e.effects() - before; got != 1 {
			t.Errorf("the retry after the injected U made %d effects, want 1", got)
		}
		if got := e.orderStatus(order); got != models.OrderStatusCompleted {
			t.Errorf("after the retry the order is %s", got)
		}
		if got := e.metric(`orderhub_faults_injected_total{action="answer",operation="notifyOrderCompletion"}`); got != 1 {
			t.Errorf("faults injected (answer) = %v, want 1", got)
		}
		if got := e.metric(`orderhub_faults_injected_total{action="delay",operation="notifyOrderCompletion"}`); got != 0 {
			t.Errorf("faults injected (delay) = %v, want 0", got)
		}
	})
}

// An F answer with a message of the rule's, until the rule is deleted,
// matched by Client-Id and tradeId.
func TestFaultAnswerUntilDeleted(t *testing.T) {
	faultEnvs(t, func(t *testing.T, e *env) {
		trade := uid("trade")
		rule := e.addFault(models.NewFaultRule{
			Operation: opAudit.id, Action: models.FaultActionAnswer,
			Match:      &models.FaultMatch{TradeID: &trade, ClientID: &e.clientID},
			ResultCode: ptr(models.ResultCodeRequestTrafficExceedLimit), ResultMessage: ptr("slow down, test"),
		})
		if rule.Times != nil || rule.Remaining != nil {
			t.Errorf("a rule without times has %v/%v", rule.Times, rule.Remaining)
		}
		for range 3 {
			got := e.call(opAudit, audit(uid("req"), trade)).wantResult(t, http.StatusOK, models.ResultStatusFailure, "REQUEST_TRAFFIC_EXCEED_LIMIT")
			if got.ResultMessage != "slow down, test" {
				t.Errorf("message %q, want the rule's", got.ResultMessage)
			}
		}
		if rules := e.faultRules(); len(rules) != 1 || rules[0].Injected != 3 {
			t.Errorf("rules after 3 calls: %+v", rules)
		}
		if len(e.audits(trade)) != 0 {
			t.Error("an injected F recorded an audit")
		}
		res, err := e.c.DeleteFaultRuleWithResponse(e.ctx(), rule.FaultID, admin)
		if err != nil || res.StatusCode() != http.StatusNoContent {
			t.Fatalf("deleteFaultRule: %v %v", err, res.StatusCode())
		}
		// Deleting it again is no error: the rule is not in force either way.
		if res, err := e.c.DeleteFaultRuleWithResponse(e.ctx(), rule.FaultID, admin); err != nil || res.StatusCode() != http.StatusNoContent {
			t.Errorf("deleteFaultRule again: %v %v", err, res.StatusCode())
		}
		e.call(opAudit, audit(uid("req"), trade)).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
	})
}

// A delay longer than the request timeout still ends in the normal answer:
// the call gets a whole timeout after its wait.
func TestFaultDelay(t *testing.T) {
	faultEnvs(t, func(t *testing.T, e *env) {
		order := e.newOrder(models.OrderStatusReady)
		delay := requestTimeout + 200*time.Millisecond
		e.addFault(models.NewFaultRule{
			Operation: opInquire.id, Action: models.FaultActionDelay,
			Match: &models.FaultMatch{RequestOrderID: &order}, DelayMs: ptr(int(delay / time.Millisecond)), Times: ptr(1),
		})
		start := time.Now()
		e.call(opInquire, inquiry(order)).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
		if took := time.Since(start); took < delay {
			t.Errorf("the delayed answer came after %s, before the %s delay", took, delay)
		}
		if got := e.metric(`orderhub_faults_injected_total{action="delay",operation="inquireOrderDetail"}`); got != 1 {
			t.Errorf("faults injected (delay) = %v, want 1", got)
		}
	})
}

// Dropped before processing: no answer and no work; the retry does it once.
func TestFaultDropBeforeProcessing(t *testing.T) {
	faultEnvs(t, func(t *testing.T, e *env) {
		order := e.newOrder(models.OrderStatusReady)
		req := completion(uid("req"), order)
		e.addFault(models.NewFaultRule{Operation: opCompletion.id, Action: models.FaultActionDropBeforeProcessing, Match: &models.FaultMatch{RequestOrderID: &order}, Times: ptr(1)})
		if r, err := e.send(e.ctx(), opCompletion, req); err == nil {
			t.Fatalf("the call was answered: %v", r)
		}
		if got := e.orderStatus(order); got != models.OrderStatusReady {
			t.Errorf("after the drop before processing the order is %s", got)
		}
		if commits, _ := e.counting.Totals(); commits != 0 {
			t.Errorf("%d commits after a drop before processing", commits)
		}
		e.call(opCompletion, req).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
		if got := e.effects(); got != 1 {
			t.Errorf("%d effects after the retry, want 1", got)
		}
	})
}

// Dropped after commit: the effect and the stored answer are there, the
// caller heard nothing, and its retry gets the stored answer.
func TestFaultDropAfterCommit(t *testing.T) {
	faultEnvs(t, func(t *testing.T, e *env) {
		trade := uid("trade")
		req := audit(uid("req"), trade)
		e.addFault(models.NewFaultRule{Operation: opAudit.id, Action: models.FaultActionDropAfterCommit, Match: &models.FaultMatch{RequestID: &req.RequestID}, Times: ptr(1)})
		if r, err := e.send(e.ctx(), opAudit, req); err == nil {
			t.Fatalf("the call was answered: %v", r)
		}
		if got := e.audits(trade); len(got) != 1 || got[0].RequestID != req.RequestID {
			t.Fatalf("after the drop after commit the audits are %+v, want the one recorded", got)
		}
		retry := e.call(opAudit, req)
		retry.wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
		again := e.call(opAudit, req)
		sameAnswer(t, retry, again)
		if got := e.effects(); got != 1 {
			t.Errorf("%d effects, want 1", got)
		}
		if got := e.metric(`orderhub_idempotency_total{operation="notifyDeliveryAuditResult",outcome="replay"}`); got != 2 {
			t.Errorf("replays = %v, want 2: the retry replays what the dropped call stored", got)
		}
		if got := e.metric(`orderhub_faults_injected_total{action="dropAfterCommit",operation="notifyDeliveryAuditResult"}`); got != 1 {
			t.Errorf("faults injected (dropAfterCommit) = %v, want 1", got)
		}
	})
}

// Rules are checked against the contract; the oldest matching rule acts.
func TestFaultRulesAreChecked(t *testing.T) {
	e := newEnv(t, withMemoryStore(), withFaults())
	for name, tc := range map[string]struct {
		rule models.NewFaultRule
		msg  string
	}{
		"operator operation": {models.NewFaultRule{Operation: "putOrder", Action: models.FaultActionDropBeforeProcessing},
			"operation: not a partner operation; one of " + strings.Join(testkit.PartnerOperations(t), ", ")},
		"field the operation lacks": {models.NewFaultRule{Operation: opCompletion.id, Action: models.FaultActionDropBeforeProcessing, Match: &models.FaultMatch{TradeID: ptr("t1")}},
			"match.tradeId: notifyOrderCompletion has no tradeId"},
		"code the operation does not answer": {models.NewFaultRule{Operation: opInquire.id, Action: models.FaultActionAnswer, ResultCode: ptr(models.ResultCodeRepeatReqInconsistent)},
			"resultCode: inquireOrderDetail does not answer REPEAT_REQ_INCONSISTENT; one of PARAM_ILLEGAL, ACCESS_DENIED, INVALID_SIGNATURE, ORDER_NOT_EXIST, REQUEST_TRAFFIC_EXCEED_LIMIT, UNKNOWN_EXCEPTION"},
		"success": {models.NewFaultRule{Operation: opAudit.id, Action: models.FaultActionAnswer, ResultCode: ptr(models.ResultCodeSuccess)},
			"resultCode: SUCCESS comes only from doing the work (use delay or dropAfterCommit); one of PARAM_ILLEGAL, ACCESS_DENIED, INVALID_SIGNATURE, REPEAT_REQ_INCONSISTENT, REQUEST_TRAFFIC_EXCEED_LIMIT, UNKNOWN_EXCEPTION"},
		"answer without code":  {models.NewFaultRule{Operation: opAudit.id, Action: models.FaultActionAnswer}, "resultCode: action answer needs one"},
		"delay without delay":  {models.NewFaultRule{Operation: opAudit.id, Action: models.FaultActionDelay}, "delayMs: action delay needs one"},
		"drop with a delay":    {models.NewFaultRule{Operation: opAudit.id, Action: models.FaultActionDropAfterCommit, DelayMs: ptr(5)}, "delayMs: does not go with action dropAfterCommit"},
		"delay with a code":    {models.NewFaultRule{Operation: opAudit.id, Action: models.FaultActionDelay, DelayMs: ptr(5), ResultCode: ptr(models.ResultCodeUnknownException)}, "resultCode: does not go with action delay"},
		"answer with a delay":  {models.NewFaultRule{Operation: opAudit.id, Action: models.FaultActionAnswer, ResultCode: ptr(models.ResultCodeUnknownException), DelayMs: ptr(5)}, "delayMs: does not go with action answer"},
		"drop with a message":  {models.NewFaultRule{Operation: opAudit.id, Action: models.FaultActionDropBeforeProcessing, ResultMessage: ptr("x")}, "resultMessage: does not go with action dropBeforeProcessing"},
		"delay over a minute":  {models.NewFaultRule{Operation: opAudit.id, Action: models.FaultActionDelay, DelayMs: ptr(60001)}, "delayMs"},
		"times zero":           {models.NewFaultRule{Operation: opAudit.id, Action: models.FaultActionDropBeforeProcessing, Times: ptr(0)}, "times"},
		"unknown action":       {models.NewFaultRule{Operation: opAudit.id, Action: "explode"}, "action"},
		"empty match value":    {models.NewFaultRule{Operation: opAudit.id, Action: models.FaultActionDropBeforeProcessing, Match: &models.FaultMatch{RequestID: ptr("")}}, "match.requestId"},
		"unknown operation id": {models.NewFaultRule{Operation: "notifyOrderCompletio", Action: models.FaultActionDropBeforeProcessing}, "operation: not a partner operation"},
	} {
		t.Run(name, func(t *testing.T) {
			res, err := e.c.AddFaultRuleWithResponse(e.ctx(), tc.rule, admin)
			if err != nil {
				t.Fatal(err)
			}
			if res.JSON400 == nil {
				t.Fatalf("HTTP %d %s, want 400", res.StatusCode(), res.Body)
			}
			if got := res.JSON400.Result.ResultMessage; !strings.HasPrefix(got, tc.msg) {
				t.Errorf("message %q, want it to start %q", got, tc.msg)
			}
		})
	}
	if rules := e.faultRules(); len(rules) != 0 {
		t.Errorf("refused rules are in force: %+v", rules)
	}

	// The oldest matching rule acts; the other waits its turn.
	order := e.newOrder(models.OrderStatusReady)
	first := e.addFault(models.NewFaultRule{Operation: opInquire.id, Action: models.FaultActionAnswer, ResultCode: ptr(models.ResultCodeUnknownException), Times: ptr(1)})
	e.addFault(models.NewFaultRule{Operation: opInquire.id, Action: models.FaultActionAnswer, ResultCode: ptr(models.ResultCodeOrderNotExist), Times: ptr(1)})
	if rules := e.faultRules(); len(rules) != 2 || rules[0].FaultID != first.FaultID {
		t.Fatalf("rules: %+v, want the first one first", rules)
	}
	e.call(opInquire, inquiry(order)).wantResult(t, http.StatusOK, models.ResultStatusUnknown, "UNKNOWN_EXCEPTION")
	e.call(opInquire, inquiry(order)).wantResult(t, http.StatusOK, models.ResultStatusFailure, "ORDER_NOT_EXIST")
	e.call(opInquire, inquiry(order)).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")

	// Delete them all: no rule acts any more.
	e.addFault(models.NewFaultRule{Operation: opInquire.id, Action: models.FaultActionDropBeforeProcessing})
	if res, err := e.c.DeleteFaultRulesWithResponse(e.ctx(), admin); err != nil || res.StatusCode() != http.StatusNoContent {
		t.Fatalf("deleteFaultRules: %v %v", err, res.StatusCode())
	}
	e.call(opInquire, inquiry(order)).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
}

// A call refused before its handler is refused as always: a rule acts
// only on calls that pass message security and the contract.
func TestFaultsActOnValidCallsOnly(t *testing.T) {
	e := newEnv(t, withMemoryStore(), withFaults())
	e.addFault(models.NewFaultRule{Operation: opInquire.id, Action: models.FaultActionAnswer, ResultCode: ptr(models.ResultCodeUnknownException)})
	e.call(opInquire, rawBody{"application/json", `{"requestOrderId":""}`}).wantResult(t, http.StatusOK, models.ResultStatusFailure, "PARAM_ILLEGAL")
	e.call(opInquire, inquiry("o1"), withoutHeader("Signature")).wantResult(t, http.StatusOK, models.ResultStatusFailure, "INVALID_SIGNATURE")
	if rules := e.faultRules(); rules[0].Injected != 0 {
		t.Errorf("the rule acted on refused calls: %+v", rules[0])
	}
}
