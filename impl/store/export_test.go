package store

// The Redis key layout, for the external tests that inspect Redis directly.

func ClaimKey(k Key) string           { return claimKey(k) }
func OrderKey(id string) string       { return orderKey(id) }
func AuditsKey(tradeID string) string { return auditsKey(tradeID) }
