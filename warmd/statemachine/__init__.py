"""Pure replicated state: commands, the task lifecycle table, apply, snapshots."""
