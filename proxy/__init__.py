"""Switchyard's proxy: an Anthropic-compatible difficulty router between Claude Code and two models."""

__version__ = "0.1.0"
