"""The I/O shell: driver, transport, disk, applier, warmer, tailer, daemon."""
