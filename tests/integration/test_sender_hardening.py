"""Placeholder: sender hardening tests."""
