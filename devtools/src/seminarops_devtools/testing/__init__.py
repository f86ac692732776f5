"""Test support: the real local stack as pytest fixtures, and polling helpers."""
