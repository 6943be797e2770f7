"""Shared state (sessions, failure counters, locks, used TOTP steps): one Protocol, two stores."""
