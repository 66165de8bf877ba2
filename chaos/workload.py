"""The chaos client workload: submit tasks continuously and read them back, recording a
history that the linearizability checker can judge.

Each task is a register: its submission is a PUT of "exists" (acknowledged, or of unknown
outcome when the client gave up), and `task-show` on a random node is a GET that sees
"exists" or nothing. A linearizable system never shows an acknowledged task as absent,
nor a task as present before anyone submitted it.
"""

from __future__ import annotations

import random
import threading
import time

from chaos.ops import submit
from warmd.admin.client import AdminClientError
from warmd.testing.linearizability import Operation, OperationKind
from warmd.testing.procs import ProcessCluster

PRESENT = "exists"
SUBMIT_GIVE_UP_S = 20.0


def _ticks() -> int:
    return time.monotonic_ns() // 1000


class Workload:
    """Client threads over a cluster until `stop()`: `submitters` submitting tasks side by
    side (each its own client in the history; several keep submits in flight, so a soak
    reaches the state's bounds within its warm-up), and one reader."""

    def __init__(self, cluster: ProcessCluster, target: str, seed: int, keys_per_task: int,
                 submit_interval_s: float, submitters: int = 1) -> None:
        if submitters < 1:
            raise ValueError(f"need at least one submitter, got {submitters}")
        self.cluster = cluster
        self.target = target
        self.keys_per_task = keys_per_task
        self.submit_interval_s = submit_interval_s
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.acknowledged: list[str] = []
        self.unknown: list[str] = []
        self.history: list[Operation] = []
        self._issued: list[str] = []
        self._reader_id = submitters
        self._threads = [threading.Thread(target=self._submit_loop, args=(client_id,),
                                          name=f"chaos-submit-{client_id}")
                         for client_id in range(submitters)]
        self._threads.append(threading.Thread(target=self._read_loop, name="chaos-read"))

    def start(self) -> Workload:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=SUBMIT_GIVE_UP_S + 10)

    def _record(self, operation: Operation) -> None:
        with self._lock:
            self.history.append(operation)

    def _submit_loop(self, client_id: int) -> None:
        while not self._stop.is_set():
            with self._lock:  # ids in the order they are issued, whichever thread takes one
                number = len(self._issued)
                task_id = f"c{number:05d}"
                self._issued.append(task_id)
            keys = [f"{task_id}:{key}" for key in range(self.keys_per_task)]
            call = _ticks()
            try:
                submit(self.cluster, task_id, self.target, keys, SUBMIT_GIVE_UP_S, prefer=number)
            except TimeoutError:
                with self._lock:
                    self.unknown.append(task_id)
                self._record(Operation(client_id, OperationKind.PUT, task_id, PRESENT, call, None))
            else:
                with self._lock:
                    self.acknowledged.append(task_id)
                self._record(Operation(client_id, OperationKind.PUT, task_id, PRESENT, call,
                                       _ticks()))
            self._stop.wait(self.submit_interval_s)

    def _read_loop(self) -> None:
        reader_rng = random.Random(self._rng.random())
        while not self._stop.is_set():
            with self._lock:
                issued = list(self._issued[-20:])
            if not issued:
                self._stop.wait(0.05)
                continue
            # also ask for the next id, which nobody has submitted yet: it must be absent
            task_id = reader_rng.choice([*issued, f"c{len(self._issued):05d}"])
            running = [n for n, node in sorted(self.cluster.nodes.items()) if node.running()]
            if running:
                self._read_one(reader_rng.choice(running), task_id)
            self._stop.wait(0.02)

    def _read_one(self, node_id: int, task_id: str) -> None:
        call = _ticks()
        try:
            self.cluster.call(node_id, "task-show", timeout_s=5.0, task_id=task_id)
            value: str | None = PRESENT
        except AdminClientError as error:
            if "no task" not in str(error):
                return  # unanswered: constrains nothing
            value = None
        self._record(Operation(self._reader_id, OperationKind.GET, task_id, value, call,
                               _ticks()))
