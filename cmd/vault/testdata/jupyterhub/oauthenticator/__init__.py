"""Test-only stand-in package: see generic.py."""
