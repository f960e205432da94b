"""Sessions: the store contract, the memory and Redis tiers, the tiered store, SessionManager."""
