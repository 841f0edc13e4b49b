"""Pure planning: backup plans, restore chains, cadence, retention. No I/O here."""
