"""autoresearch-tui engine: everything that is not UI. Never imports textual."""
