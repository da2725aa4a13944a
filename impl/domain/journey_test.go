package domain

import "testing"

func TestCanMove(t *testing.T) {
	all := []OrderStatus{OrderSuccess, Accepted, Preparing, Ready, Completed, Cancelled, Rejected, OrderFail}
	allowed := map[[2]OrderStatus]bool{}
	allow := func(from OrderStatus, to ...OrderStatus) {
		for _, s := range to {
			allowed[[2]OrderStatus{from, s}] = true
		}
	}
	allow(OrderSuccess, OrderSuccess, Accepted, Preparing, Ready, Completed, Cancelled, Rejected, OrderFail)
	allow(Accepted, Accepted, Preparing, Ready, Completed, Cancelled, OrderFail)
	allow(Preparing, Preparing, Ready, Completed, Cancelled, OrderFail)
	allow(Ready, Ready, Completed, Cancelled, OrderFail)
	allow(Completed, Completed)
	allow(Cancelled, Cancelled)
	allow(Rejected, Rejected)
	allow(OrderFail, OrderFail)
	for _, from := range all {
		for _, to := range all {
			if got, want := CanMove(from, to), allowed[[2]OrderStatus{from, to}]; got != want {
				t.Errorf("CanMove(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
	if CanMove("BOGUS", Completed) || CanMove(OrderSuccess, "BOGUS") {
		t.Error("unknown statuses must not move")
	}
}
