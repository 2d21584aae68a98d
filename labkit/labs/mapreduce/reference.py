"""The MapReduce lab's worked answer: a worker silent for the timeout is dead;
its running tasks and its completed map tasks go back to idle, its completed
reduce tasks stay; maps first, with locality, and reduces once every map is
done; only the first completion of a task the master counts on wins; near the
end of a phase, one backup copy per running task, oldest first."""

from __future__ import annotations

from .skeleton import MasterSkeleton


class MasterReference(MasterSkeleton):
    """The worked answer to the MapReduce lab."""

    def silent_workers(self):
        deadline = self.sim.now - self.job.timeout
        return [name for name, state in self.workers.items()
                if state.alive and state.last_seen < deadline]

    def reassign(self, worker):
        for task in self.maps + self.reduces:
            task.running = [a for a in task.running if a.worker != worker]
            if task.state == "running" and not task.running:
                task.state = "idle"
        for task in self.maps:
            if task.state == "completed" and task.location == worker:
                task.state, task.location = "idle", None

    def pick(self, worker):
        maps = [t for t in self.maps if t.state == "idle"]
        local = [t for t in maps if worker in self.job.splits[t.index].replicas]
        if local or maps:
            return (local or maps)[0]
        if self.reducing:
            return next((t for t in self.reduces if t.state == "idle"), None)
        return None

    def finish(self, attempt):
        task = self.task_of(attempt)
        if attempt not in task.running or task.state == "completed":
            return None
        task.running.remove(attempt)
        for other in list(task.running):
            self.cancel(other)
        task.state, task.done_by = "completed", attempt
        if task.phase == "map":
            task.location = attempt.worker
        return task

    def backup_for(self, worker):
        phase = self.reduces if self.reducing else self.maps
        candidates = [t for t in phase if t.state == "running" and t.backups == 0
                      and all(a.worker != worker for a in t.running)]
        return min(candidates, key=lambda t: t.running[0].start, default=None)
