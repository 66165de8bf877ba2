"""Pure log analysis: formats, template mining and mergeable summaries."""
