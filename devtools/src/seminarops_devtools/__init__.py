"""seminar-ops development tooling: a dev dependency only, never imported by runtime code."""
