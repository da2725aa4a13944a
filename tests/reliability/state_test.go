package reliability

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/store"
)

// state is what a set of notifications left in orderhub, read through the
// operator API.
type state struct {
	// applied maps the requestId of every notification whose effect is
	// there to the time the effect was written (the order's updatedAt, the
	// audit's receivedAt): a second execution would change it.
	applied map[string]time.Time
	// strays are audit entries no notification accounts for: a batch
	// recorded twice, or with another requestId.
	strays []string
}

// stateOf reads the state the notes left in the orderhub at baseURL. Each
// audit note has a batch of its own, so a trade must list exactly one
// entry per note of that trade.
func (p *partner) stateOf(ctx context.Context, baseURL string, notes []*note) (state, error) {
	s := state{applied: map[string]time.Time{}}
	byTrade := map[string]map[string]*note{} // tradeId → batchId → note
	for _, n := range notes {
		switch n.path {
		case pathCompletion:
			o, err := p.order(ctx, baseURL, n.orderID)
			if err != nil {
				return state{}, err
			}
			if o.OrderStatus == models.OrderStatusCompleted {
				s.applied[n.requestID] = o.UpdatedAt
			}
		case pathAudit:
			if byTrade[n.tradeID] == nil {
				byTrade[n.tradeID] = map[string]*note{}
			}
			byTrade[n.tradeID][n.batchID] = n
		}
	}
	trades := make([]string, 0, len(byTrade))
	for id := range byTrade {
		trades = append(trades, id)
	}
	slices.Sort(trades)
	for _, trade := range trades {
		list, err := p.audits(ctx, baseURL, trade)
		if err != nil {
			return state{}, err
		}
		seen := map[string]bool{}
		for _, a := range list {
			n, ok := byTrade[trade][a.DeliveryBatchID]
			switch {
			case !ok || a.RequestID != n.requestID:
				s.strays = append(s.strays, fmt.Sprintf("trade %s batch %s requestId %s: no such notification", trade, a.DeliveryBatchID, a.RequestID))
			case seen[a.DeliveryBatchID]:
				s.strays = append(s.strays, fmt.Sprintf("trade %s batch %s listed twice", trade, a.DeliveryBatchID))
			default:
				seen[a.DeliveryBatchID] = true
				s.applied[n.requestID] = a.ReceivedAt
			}
		}
	}
	return s, nil
}

// markCreated notes, from the store's own version counter, how often each
// completion's order had been written when the notification was about to
// be sent; completionWrites then counts the writes since.
func markCreated(ctx context.Context, st store.Store, notes []*note) error {
	for _, n := range notes {
		if n.path != pathCompletion {
			continue
		}
		o, err := st.GetOrder(ctx, n.orderID)
		if err != nil {
			return fmt.Errorf("store.GetOrder %s: %w", n.orderID, err)
		}
		n.created = o.Version
	}
	return nil
}

// completionWrites counts the writes of each completion's order since
// markCreated: exactly 1 when the completion was applied once. (The
// operator call that created the order is not counted: a Redis client may
// run its script twice, which writes the order twice.)
func completionWrites(ctx context.Context, st store.Store, notes []*note) (map[string]int64, error) {
	writes := map[string]int64{}
	for _, n := range notes {
		if n.path != pathCompletion {
			continue
		}
		o, err := st.GetOrder(ctx, n.orderID)
		if err != nil {
			return nil, fmt.Errorf("store.GetOrder %s: %w", n.orderID, err)
		}
		writes[n.orderID] = o.Version - n.created
	}
	return writes, nil
}

// checkWrittenOnce fails t for each completion of notes whose order was not
// written exactly once since markCreated, and returns how many were not.
// Errors begin with when, if it is not empty.
func checkWrittenOnce(t *testing.T, st store.Store, notes []*note, when string) (rewrites int) {
	t.Helper()
	writes, err := completionWrites(t.Context(), st, notes)
	if err != nil {
		t.Fatal(err)
	}
	if when != "" {
		when += ": "
	}
	for id, w := range writes {
		if w != 1 {
			rewrites++
			t.Errorf("%sorder %s written %d times by its completion, want once", when, id, w)
		}
	}
	return rewrites
}
