"""Switchyard's guided installer (`python -m installer`)."""
