"""Pure leader decisions: plan, assign, reassign, expire; output is commands to propose."""

from warmd.scheduler.config import SchedulerConfig
from warmd.scheduler.plan import decide

__all__ = ["SchedulerConfig", "decide"]
