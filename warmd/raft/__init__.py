"""Pure Raft consensus: tick/step/propose in, Ready out; no I/O, clocks or threads."""
