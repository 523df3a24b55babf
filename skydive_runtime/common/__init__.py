"""Helpers shared by every layer: time, identifiers, JSON."""
