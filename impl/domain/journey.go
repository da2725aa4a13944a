package domain

// rank orders the forward journey; final statuses have rank 0.
func rank(s OrderStatus) int {
	switch s {
	case OrderSuccess:
		return 1
	case Accepted:
		return 2
	case Preparing:
		return 3
	case Ready:
		return 4
	}
	return 0
}

// Valid reports whether s is one of the known statuses.
func (s OrderStatus) Valid() bool {
	switch s {
	case OrderSuccess, Accepted, Preparing, Ready, Completed, Cancelled, Rejected, OrderFail:
		return true
	}
	return false
}

// Final reports whether s can never change again.
func (s OrderStatus) Final() bool {
	return s.Valid() && rank(s) == 0
}

// CanMove reports whether the order journey allows from → to. Staying in the
// same status is allowed (it converges); final statuses never change.
//
// Forward moves only: ORDER_SUCCESS → ACCEPTED → PREPARING → READY →
// COMPLETED, steps may be skipped; REJECTED only before ACCEPTED; CANCELLED
// and ORDER_FAIL from any non-final status.
func CanMove(from, to OrderStatus) bool {
	if !from.Valid() || !to.Valid() {
		return false
	}
	if from == to {
		return true
	}
	if from.Final() {
		return false
	}
	switch to {
	case Completed, Cancelled, OrderFail:
		return true
	case Rejected:
		return from == OrderSuccess
	}
	return rank(to) > rank(from)
}
