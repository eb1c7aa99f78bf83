"""Switchyard's ops toolkit: the commands a user runs to see, tune and fix a running proxy."""
