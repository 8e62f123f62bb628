"""History compaction: drop the finished straight-line history of a workflow's task tree.

Spiff keeps every task it ever ran, each a child of the one before. Its task lookups stop at 1,000
levels of that tree, so a loop of a few hundred iterations would silently stop being seen (the
instance "completes" early), and every step walks the whole history (quadratic time, state growing
with every task run).

What is dropped, conservatively: the chain of COMPLETED tasks directly under the root that each have
exactly one child — history no engine code reads again. The last task of that chain stays (its
data is what the next task inherited) and is re-attached to the root. The chain stops at the first
task that is unfinished, branches (parallel split, boundary events, a gateway with several live
paths) or has more than one child, so join tokens, waiting catch events and their real parents, and
everything below a branch stay exactly as Spiff left them. Completed sub-workflows of dropped tasks
go too. The audit log has already recorded each of these steps (``element-completed`` …), which is
where history lives.

Loops that run through a parallel split keep their history below the split (not compacted here).
"""

from __future__ import annotations

from SpiffWorkflow.util.task import TaskState

# Compact when the droppable chain is at least this long: cheap enough to check after every few
# hundred engine steps, and far below the 1,000-level lookup limit.
MIN_CHAIN = 64
CHECK_EVERY = 200  # engine steps between checks inside one long engine run


def compact(workflow, min_chain: int = MIN_CHAIN) -> int:
    """Drop droppable history from the workflow and its sub-workflows; returns the number of tasks dropped."""
    dropped = _compact_one(workflow, workflow, min_chain)
    for subprocess in list(workflow.subprocesses.values()):
        if not subprocess.completed:
            dropped += _compact_one(subprocess, workflow, min_chain)
    return dropped


def _compact_one(workflow, top, min_chain: int) -> int:
    root = workflow.task_tree
    if root is None or len(root._children) != 1:
        return 0
    chain = []
    task = workflow.tasks.get(root._children[0])
    while task is not None and task.state == TaskState.COMPLETED and len(task._children) == 1:
        chain.append(task)
        task = workflow.tasks.get(task._children[0])
    if task is None or len(chain) < min_chain:
        return 0
    keep = chain[-1]
    dropped = chain[:-1]
    if any(old.id in top.subprocesses and not top.subprocesses[old.id].completed for old in dropped):
        return 0  # a finished task with a running sub-workflow: leave everything as it is
    for old in dropped:
        if old.id in top.subprocesses:
            top.delete_subprocess(old)
        del workflow.tasks[old.id]
    root._children = [keep.id]
    keep._parent = root.id
    if workflow.last_task is not None and workflow.last_task.id not in workflow.tasks:
        workflow.last_task = keep
    return len(dropped)
