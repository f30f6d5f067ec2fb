"""Tests of the Xero wire layer (plain Python, no Django)."""
