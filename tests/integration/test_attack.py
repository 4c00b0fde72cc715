"""Placeholder: attack tests."""
