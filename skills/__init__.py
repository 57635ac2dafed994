"""Prompt skills in Claude Code SKILL.md format, shipped as package data."""
