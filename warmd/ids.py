"""Named id types shared by every layer."""

from __future__ import annotations

from typing import NewType

NodeId = NewType("NodeId", int)
Term = NewType("Term", int)
Index = NewType("Index", int)
TaskId = NewType("TaskId", str)
