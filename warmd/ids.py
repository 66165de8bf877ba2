"""Named id types shared by every layer."""

from __future__ import annotations

from typing import NewType

NodeId = NewType("NodeId", int)
Term = NewType("Term", int)
Index = NewType("Index", int)
TaskId = NewType("TaskId", str)

# Node ids travel in replicated commands as msgpack int64, so none may exceed this.
NODE_ID_MAX = 2**63 - 1
