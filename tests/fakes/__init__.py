"""Fake upstream providers: real loopback servers speaking the providers' wire formats."""
