"""Web edge: decision pages reached from signed email links, and the health check."""
