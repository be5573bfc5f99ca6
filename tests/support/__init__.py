"""Test support: data builders, real-component helpers."""
