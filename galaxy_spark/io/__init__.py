"""Storage mechanisms every job shares: path guards and the atomic commit."""
