package domain

import (
	"errors"
	"strconv"
	"time"
)

// Amount is money in a currency's minor units, as Ant's APIs write it:
// Value is a non-negative whole number in decimal.
type Amount struct {
	Currency string `json:"currency"`
	Value    string `json:"value"`
}

// The refund rules of notifyOrderChange: the total refunded never goes
// down, and its currency never changes once set.
var (
	ErrRefundDecrease = errors.New("refundAmount.value: below the refund total notified before; it is a running total and never goes down")
	ErrRefundCurrency = errors.New("refundAmount.currency: differs from the currency of the refund total notified before")
)

// Change is what a partner says changed in an order (notifyOrderChange):
// a nil field is not part of the change and stays as it is.
type Change struct {
	Status           *OrderStatus
	ShortOrderNumber *string
	ReadyTime        *time.Time
	DeliveryStatus   *string
	Refunded         *Amount
}

// Empty reports whether c changes nothing.
func (c Change) Empty() bool {
	return c.Status == nil && c.ShortOrderNumber == nil && c.ReadyTime == nil && c.DeliveryStatus == nil && c.Refunded == nil
}

// Apply returns o with c applied and whether anything differs, or the rule
// c breaks. The status follows the journey (CanMove). Once o is in a final
// status, its status, short order number and ready time no longer change
// (the same values again converge), its delivery status may still change
// after COMPLETED only, and its refund total may still grow after any
// final status: refunds and deliveries come after completion.
func (o Order) Apply(c Change) (Order, bool, error) {
	final := o.Status.Final()
	same := func(changed bool) error {
		if final && changed {
			return ErrOrderStatusInvalid
		}
		return nil
	}
	next, changed := o, false
	if c.Status != nil {
		if !CanMove(o.Status, *c.Status) {
			return o, false, ErrOrderStatusInvalid
		}
		changed = changed || *c.Status != o.Status
		next.Status = *c.Status
	}
	if c.ShortOrderNumber != nil {
		diff := *c.ShortOrderNumber != o.ShortOrderNumber
		if err := same(diff); err != nil {
			return o, false, err
		}
		changed = changed || diff
		next.ShortOrderNumber = *c.ShortOrderNumber
	}
	if c.ReadyTime != nil {
		// Equal instants written with another offset are a change: the
		// partner's own way of writing it is what inquiries show.
		diff := o.ReadyTime == nil || o.ReadyTime.Format(time.RFC3339Nano) != c.ReadyTime.Format(time.RFC3339Nano)
		if err := same(diff); err != nil {
			return o, false, err
		}
		changed = changed || diff
		t := *c.ReadyTime
		next.ReadyTime = &t
	}
	if c.DeliveryStatus != nil {
		diff := *c.DeliveryStatus != o.DeliveryStatus
		if final && o.Status != Completed && diff {
			return o, false, ErrOrderStatusInvalid
		}
		changed = changed || diff
		next.DeliveryStatus = *c.DeliveryStatus
	}
	if c.Refunded != nil {
		diff, err := refund(o.Refunded, *c.Refunded)
		if err != nil {
			return o, false, err
		}
		changed = changed || diff
		r := *c.Refunded
		next.Refunded = &r
	}
	return next, changed, nil
}

// refund checks a new refund total against the one before (nil: none)
// and reports whether it differs.
func refund(before *Amount, now Amount) (bool, error) {
	if before == nil {
		return true, nil
	}
	if now.Currency != before.Currency {
		return false, ErrRefundCurrency
	}
	// Both are whole numbers of at most 18 digits (the contract's pattern):
	// they fit an int64.
	was, err1 := strconv.ParseInt(before.Value, 10, 64)
	is, err2 := strconv.ParseInt(now.Value, 10, 64)
	if err1 != nil || err2 != nil {
		return false, errors.New("refundAmount.value: not a whole number of minor units")
	}
	if is < was {
		return false, ErrRefundDecrease
	}
	return is != was, nil
}
