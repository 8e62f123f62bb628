"""History compaction: drop the finished history of a workflow's task tree that no engine code reads.

Spiff keeps every task it ever ran, each a child of the one before. Its task lookups stop at 1,000
levels of that tree, so a loop of a few hundred iterations would silently stop being seen (the
instance "completes" early), its joins walk every ancestor recursively, and every step walks the whole
history (quadratic time, state growing with every task run).

What is dropped, conservatively — the *trunk*: starting under the root, finished tasks along the one
path that is still alive, together with the finished side branches hanging off that path:

* a trunk task is COMPLETED; among its children exactly one subtree still holds unfinished tasks
  (the path goes on there), all other children are *side branches* whose every task is finished;
* a side branch is dropped only when every join task in it (Spiff's join tokens) has been consumed
  by a later firing of the same join on the trunk — that firing already merged the branch's data.
  A side branch still waiting to be merged (e.g. one that ended at an end event, merged when the
  process ends) stops the trunk there;
* the last trunk task before the first one we must keep stays (its data is what the path inherited)
  and is re-attached to the root; completed sub-workflows of dropped tasks go too.

Everything from the first task that is unfinished, forks into two live paths, or holds an unmerged
side branch stays exactly as Spiff left it: waiting events and their real parents, open boundary
events, join tokens still waiting. The audit log has already recorded each dropped step
(``element-completed``, ``task-completed``…), which is where history lives.
"""

from __future__ import annotations

from SpiffWorkflow.specs.Join import Join
from SpiffWorkflow.util.task import TaskState

# Compact when at least this many trunk tasks can go: cheap enough to check after every few hundred
# engine steps, and far below the 1,000-level lookup limit.
MIN_CHAIN = 64
CHECK_EVERY = 200  # engine steps between checks inside one long engine run
FINISHED = TaskState.COMPLETED | TaskState.CANCELLED


def compact(workflow, min_chain: int = MIN_CHAIN) -> int:
    """Drop droppable history from the workflow and its sub-workflows; returns the number of tasks dropped."""
    dropped = _compact_one(workflow, workflow, min_chain)
    for subprocess in list(workflow.subprocesses.values()):
        if not subprocess.completed and subprocess.task_tree is not None:
            dropped += _compact_one(subprocess, workflow, min_chain)
    return dropped


def _compact_one(workflow, top, min_chain: int) -> int:
    if len(workflow.tasks) < min_chain + 2:  # the root plus at least min_chain + 1 trunk tasks are needed
        return 0
    root = workflow.task_tree
    if root is None or len(root._children) != 1:
        return 0
    trunk: list[tuple[object, list[list[object]]]] = []  # (task, its finished side branches as task lists)
    joins_fired: dict[str, int] = {}  # join spec name -> index of the trunk task where it last fired
    pending: list[tuple[int, set[str]]] = []  # (trunk index, join specs its side branches wait for)
    task = workflow.tasks.get(root._children[0])
    while task is not None and task.state == TaskState.COMPLETED:
        children = [workflow.tasks.get(child) for child in task._children]
        if not children or any(child is None for child in children):
            break
        sides: list[list[object]] = []
        following = children[0]
        if len(children) > 1:
            live, finished = [], []
            for child in children:
                subtree = _subtree(workflow, child)
                (finished if subtree is not None else live).append((child, subtree))
            if len(live) != 1:
                break
            following = live[0][0]
            sides = [subtree for _, subtree in finished]
        index = len(trunk)
        trunk.append((task, sides))
        if isinstance(task.task_spec, Join):
            joins_fired[task.task_spec.name] = index
        waits = {t.task_spec.name for side in sides for t in side if isinstance(t.task_spec, Join)}
        if waits:
            pending.append((index, waits))
        task = following
    if task is None:
        return 0
    # the first trunk task holding a side branch no later join firing has merged: keep from there on
    limit = len(trunk)
    for index, waits in pending:
        if any(joins_fired.get(name, -1) <= index for name in waits):
            limit = index
            break
    if limit - 1 < min_chain:
        return 0
    keep, keep_sides = trunk[limit - 1]
    dropped_tasks = [t for t, _ in trunk[: limit - 1]]
    for _, sides in trunk[: limit - 1]:
        for side in sides:
            dropped_tasks.extend(side)
    side_roots = {side[0].id for side in keep_sides}
    dropped_tasks.extend(t for side in keep_sides for t in side)
    if any(t.id in top.subprocesses and not top.subprocesses[t.id].completed for t in dropped_tasks):
        return 0  # never drop a task whose sub-workflow still runs
    for old in dropped_tasks:
        if old.id in top.subprocesses:
            top.delete_subprocess(old)
        workflow.tasks.pop(old.id, None)
    keep._children = [child for child in keep._children if child not in side_roots]
    root._children = [keep.id]
    keep._parent = root.id
    if workflow.last_task is not None and workflow.last_task.id not in workflow.tasks:
        workflow.last_task = keep
    return len(dropped_tasks)


def _subtree(workflow, start) -> list | None:
    """Every task of the subtree under ``start`` if all of them are finished, else None."""
    found, todo = [], [start]
    while todo:
        task = todo.pop()
        if task is None or not task.has_state(FINISHED) or workflow.top_workflow.subprocesses.get(task.id) \
                is not None and not workflow.top_workflow.subprocesses[task.id].completed:
            return None
        found.append(task)
        todo.extend(workflow.tasks.get(child) for child in task._children)
    return found
