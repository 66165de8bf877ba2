"""Pure leader decisions: plan, assign, reassign, expire; output is commands to propose."""
