"""Execution on SpiffWorkflow: commands, projections, instances, tasks, messages, script sandbox, timers."""
