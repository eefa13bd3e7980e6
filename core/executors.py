"""Executors: what trains the runs of the queue, on this machine or on a Ray cluster.

The run store's queue is the same whoever serves it. Two executors serve it:

* **local** (the default, no extra dependency): ``python -m core.worker`` processes on this machine, kept
  running by ``explorer.workers.Supervisor``;
* **ray**: :class:`RayExecutor` turns every queued run into a Ray task that asks for what the run needs
  (one GPU when it trains on CUDA, else ``$CNN_EXPLORER_RAY_CPUS`` CPUs, default 1), so Ray places it on
  any node of the cluster that has them.

Choose with ``$CNN_EXPLORER_EXECUTOR`` (``local`` or ``ray``; else ``executor = "ray"`` in
``.streamlit/secrets.toml``) and, for Ray, ``$CNN_EXPLORER_RAY_ADDRESS`` (else ``ray_address``): the address of a
cluster this machine has joined (``auto``, or ``HEAD:6379``); without one the server starts a local Ray instance.

The store stays the one source of truth: a :class:`StoreService` actor, pinned to the server's node, owns every
write a remote run makes (progress, heartbeats, metrics, status) and receives its checkpoint files as bytes, so
no shared file system is needed. A run on another node therefore reads exactly like a local one: stop requests
reach it through the actor, a node or task that dies stops its heartbeats (the run reads as interrupted) and
resume queues it again for whichever node is free. Ray is imported only when chosen. Never imports streamlit.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import math
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from core import checkpoint_sets, paths
from core.claims import StaleClaimError, StoreBusyError
from core.errors import ExplorerError
from core.runs import Heartbeat, RunRecord, RunStore, default_busy_timeout

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
EXECUTOR_ENV = paths.EXECUTOR_ENV
RAY_ADDRESS_ENV = paths.RAY_ADDRESS_ENV
RAY_CPUS_ENV = paths.RAY_CPUS_ENV
KINDS = ("local", "ray")
RETRY_FIRST = 1.0  # seconds before a task that failed before claiming its run is sent again; doubled each time
RETRY_LONGEST = 60.0
RETRY_MOST = 5  # tasks of one run that fail before claiming it; then the run fails, saying why


class ExecutorSettingError(ExplorerError):
    """An executor setting that names no executor, or a Ray address the store cannot work with."""


class RayNotInstalledError(ExplorerError):
    """The Ray executor was chosen, but the ``ray`` package is not installed."""


class StoreActorLostError(StoreBusyError):
    """The store actor did not answer: its process died (Ray restarts it, or the executor starts another). A
    StoreBusyError, so a trainer's writes wait for it as for a locked database, up to their bound (core.claims)."""


class Executor(Protocol):
    """What the app needs of an executor: start serving the queue (idempotent, quick) and stop."""

    def ensure(self) -> None:
        """Make sure queued runs will be trained (start whatever is missing); never blocks for long."""

    def close(self, timeout: float = 20) -> None:
        """Stop the running runs (each keeps its checkpoint) and release what was started."""

    @property
    def threads_per_run(self) -> int:
        """CPU threads a training run holds (the web server leaves them to it: devices.inference_threads)."""


def _setting(env: str, secret: object) -> str | None:
    """The environment variable, else the secret, else None (blank counts as unset)."""
    for value in (paths.raw(env), secret):
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def configured_kind(secret: object = None) -> str:
    """``local`` or ``ray``: ``$CNN_EXPLORER_EXECUTOR``, else the ``executor`` secret, else ``local``."""
    kind = (_setting(EXECUTOR_ENV, secret) or "local").lower()
    if kind not in KINDS:
        raise ExecutorSettingError(f"Unknown executor {kind!r} (from ${EXECUTOR_ENV} or the 'executor' secret): "
                                   f"choose {' or '.join(KINDS)}.")
    return kind


def configured_address(secret: object = None) -> str | None:
    """The Ray cluster to join (``$CNN_EXPLORER_RAY_ADDRESS``, else ``ray_address``); None: start a local one."""
    address = _setting(RAY_ADDRESS_ENV, secret)
    if address is not None and address.startswith("ray://"):
        raise ExecutorSettingError(
            f"{address} is a Ray Client address: the store actor must live on the machine that holds the state "
            "folder, so this machine must be a node of the cluster. Run `ray start --address HEAD:6379` here and "
            f"set {RAY_ADDRESS_ENV}=auto.")
    return address


def configured_cpus() -> float:
    """CPUs a run asks Ray for when it trains on the CPU (``$CNN_EXPLORER_RAY_CPUS``, default 1)."""
    text = paths.raw(RAY_CPUS_ENV) or "1"
    try:
        cpus = float(text)
    except ValueError:
        raise ExecutorSettingError(f"${RAY_CPUS_ENV} must be a number of CPUs, not {text!r}.") from None
    if cpus <= 0:
        raise ExecutorSettingError(f"${RAY_CPUS_ENV} must be above 0, not {text!r}.")
    return cpus


def import_ray() -> Any:
    """The ``ray`` module, or a RayNotInstalledError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayNotInstalledError(
            "The Ray executor needs Ray: `pip install -r requirements-ray.txt` (on the server and every node), or "
            f"unset ${EXECUTOR_ENV} to train with local worker processes.") from None
    return ray


_WAITER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ray-get")


def wait_for(ref: Any) -> Any:
    """``ray.get(ref)`` from a helper thread: a task that waits in its main thread lends its CPUs to another task.

    (Ray releases a task's CPUs while its main thread blocks in ``ray.get``, so a training run that asks the
    store something every batch would let more runs start than there are CPUs.)
    An ExplorerError raised in the store actor is raised here as itself (a lost claim, a busy store), not
    wrapped in Ray's task error, so that callers tell them apart as they do with a local store; an actor that died
    (or is being restarted) is a StoreActorLostError.
    """
    ray = import_ray()
    try:
        return _WAITER.submit(ray.get, ref).result()
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, ExplorerError):
            raise error.cause from None
        raise
    except ray.exceptions.RayActorError as error:
        raise StoreActorLostError(f"the run store's Ray actor did not answer ({type(error).__name__}): it is "
                                  "being restarted") from None


# On the server's node: the actor that owns the store --------------------------------------------------------------


def _checked_name(run_id: str, name: str) -> None:
    """Refuse a run id or file name that could leave the run's checkpoint folder."""
    for part in (run_id, name):
        if not part or part.startswith(".") or "/" in part or "\\" in part:
            raise ExplorerError(f"Refusing the checkpoint file {run_id!r}/{name!r}: not a plain name.")


class StoreService:
    """The run store's writes on behalf of runs on other nodes (a Ray actor on the server's node)."""

    def __init__(self, root: str, heartbeat_timeout: float) -> None:
        self.store = RunStore(Path(root), heartbeat_timeout)

    def ping(self) -> int:
        """The actor's process id (the executor asks to see that it is alive)."""
        return os.getpid()

    def call(self, method: str, args: tuple, kwargs: dict[str, Any]) -> Any:
        """``store.method(*args, **kwargs)`` for a public method of the run store."""
        if method.startswith("_") or not callable(getattr(RunStore, method, None)):
            raise ExplorerError(f"The run store has no method {method!r}.")
        return getattr(self.store, method)(*args, **kwargs)

    def put_files(self, run_id: str, files: dict[str, bytes], token: int | None = None) -> None:
        """Store checkpoint files of a run, each atomically, each set's commit record last (the set in place kept
        until then): a task that dies while sending leaves the newest complete set, never weights without their
        sidecar. With the sender's claim ``token``, a StaleClaimError (and nothing written) once another trainer
        holds the run."""
        for name in files:
            _checked_name(run_id, name)
        if token is not None:
            self.store.check_claim(run_id, token)
        checkpoint_sets.install(self.store.root / "checkpoints" / run_id, files)  # each set's commit record last

    def files(self, run_id: str) -> dict[str, bytes]:
        """Every checkpoint file of a run (to resume it on another node)."""
        _checked_name(run_id, "x")
        folder = self.store.root / "checkpoints" / run_id
        if not folder.is_dir():
            return {}
        return {path.name: path.read_bytes() for path in sorted(folder.iterdir())
                if path.is_file() and not path.name.startswith(".")}


# On any node: the store as a run sees it ----------------------------------------------------------------------------


class RemoteStore:
    """The run store seen from a Ray task: calls go to the :class:`StoreService`, checkpoints to a scratch folder.

    Checkpoint files land under ``root`` (a scratch folder on this node) exactly where a RunStore would put them;
    before every other call they are sent to the server (only those that changed), so that when the store says an
    epoch ended, or a run stopped, its checkpoint is already there. They go with the claim's ``token``: the
    server refuses them once another trainer holds the run.
    """

    QUIET = ("heartbeat", "stop_requested", "check_claim")  # frequent calls that write no checkpoint: nothing to send

    def __init__(self, service: Any, root: Path, heartbeat_timeout: float, token: int | None = None) -> None:
        self.ray = import_ray()
        self.service = service
        self.root = Path(root)
        self.heartbeat_timeout = heartbeat_timeout
        self.busy_timeout = default_busy_timeout()
        self.token = token
        self._sent: dict[Path, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def checkpoint_dir(self, run_id: str) -> Path:
        """Where a run's checkpoints are written on this node (sent to the server before the next store call)."""
        return self.root / "checkpoints" / run_id

    def checkpoint_path(self, run_id: str, which: str = "best") -> Path:
        """Where a checkpoint is written on this node."""
        return self.checkpoint_dir(run_id) / f"{which}.safetensors"

    def checkpoints(self, run_id: str) -> dict[str, Path]:
        """The checkpoints of a run on this node."""
        return {which: path for which in ("best", "last") if (path := self.checkpoint_path(run_id, which)).exists()}

    # The trainer's calls (core.runs.Store), each one call of the store service.

    def claim(self, worker: str, run_id: str | None = None) -> RunRecord | None:
        """Take a queued run for ``worker`` (RunStore.claim)."""
        return self._call("claim")(worker, run_id)

    def run(self, run_id: str) -> RunRecord:
        """One run (RunStore.run)."""
        return self._call("run")(run_id)

    def update_run(self, run_id: str, *, token: int | None = None, **fields: Any) -> None:
        """Set columns of a run (RunStore.update_run)."""
        self._call("update_run")(run_id, token=token, **fields)

    def heartbeat(self, run_id: str, token: int | None = None) -> None:
        """The trainer is alive (RunStore.heartbeat)."""
        self._call("heartbeat")(run_id, token)

    def stop_requested(self, run_id: str, token: int | None = None) -> bool:
        """Has someone asked this run to stop (RunStore.stop_requested)?"""
        return bool(self._call("stop_requested")(run_id, token))

    def check_claim(self, run_id: str, token: int) -> None:
        """Raise StaleClaimError unless ``token`` still holds the run (RunStore.check_claim)."""
        self._call("check_claim")(run_id, token)

    def log(self, run_id: str, kind: str, epoch: int, step: int, elapsed: float, values: dict[str, float],
            token: int | None = None) -> None:
        """Append one row of metrics (RunStore.log)."""
        self._call("log")(run_id, kind, epoch, step, elapsed, values, token)

    def forget_metrics_after(self, run_id: str, step: int, token: int | None = None) -> None:
        """Drop metrics after ``step`` (RunStore.forget_metrics_after)."""
        self._call("forget_metrics_after")(run_id, step, token)

    def __getattr__(self, method: str) -> Callable[..., Any]:
        return self._call(method)

    def _call(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)

        def call(*args: Any, **kwargs: Any) -> Any:
            if method not in self.QUIET:
                self.send_checkpoints()
            return wait_for(self.service.call.remote(method, args, kwargs))

        return call

    def send_checkpoints(self) -> int:
        """Send the checkpoint files written or changed since the last call; how many were sent."""
        with self._lock:
            folder = self.root / "checkpoints"
            changed = []
            for path in sorted(folder.glob("*/*")) if folder.is_dir() else []:
                if path.name.startswith(".") or not path.is_file():
                    continue
                stat = path.stat()
                if self._sent.get(path) != (stat.st_mtime_ns, stat.st_size):
                    changed.append((path, (stat.st_mtime_ns, stat.st_size)))
            for run_id in sorted({path.parent.name for path, _ in changed}):
                mine = [(path, signature) for path, signature in changed if path.parent.name == run_id]
                wait_for(self.service.put_files.remote(run_id, {path.name: path.read_bytes() for path, _ in mine},
                                                       self.token))
                self._sent.update(mine)
            return len(changed)

    def fetch_checkpoints(self, run_id: str) -> None:
        """Copy a run's checkpoint files from the server to this node (to resume it here)."""
        files = wait_for(self.service.files.remote(run_id))
        for name, payload in files.items():
            path = self.root / "checkpoints" / run_id / name
            checkpoint_sets.atomic_write(path, payload)
            stat = path.stat()
            self._sent[path] = (stat.st_mtime_ns, stat.st_size)


def train_on_node(service: Any, run_id: str, heartbeat_timeout: float) -> str:
    """The body of a Ray task: claim ``run_id`` through the store service, train it here; its final status.

    Returns ``"not queued"`` when the run was cancelled (or taken) while the task waited for resources.
    """
    ray = import_ray()
    from core.worker import Worker  # the same training path as a local worker: nothing Ray-specific below

    name = f"ray-{socket.gethostname()}-{os.getpid()}"
    run = wait_for(service.call.remote("claim", (name,), {"run_id": run_id}))
    if run is None:
        return "not queued"
    device = "cuda" if ray.get_gpu_ids() else "cpu"
    with tempfile.TemporaryDirectory(prefix="cnn-explorer-run-") as scratch:
        store = RemoteStore(service, Path(scratch), heartbeat_timeout, token=run.generation)
        if run.resume:
            store.fetch_checkpoints(run_id)
        Worker(store, device=device, name=name).train(run)
        return _send_last(store, run_id)


def _send_last(store: RemoteStore, run_id: str) -> str:
    """Send the checkpoint files a run wrote last; its final status, or "taken over" (nothing sent) when another
    trainer holds the run now."""
    try:
        store.send_checkpoints()
    except StaleClaimError as error:
        log.warning("%s", error)
        return "taken over"
    return store.run(run_id).status


# One run, several processes (a multi-GPU job) ---------------------------------------------------------------------


class AgreedStop(threading.Event):
    """A stop that every rank of a distributed run sees at the same batch: at each check the ranks agree on it.

    The trainer checks ``is_set()`` the same number of times on every rank (full batches only), so an all-reduce
    (MAX) there ends every rank together; a rank that stopped alone would leave the others waiting in DDP.
    """

    def __init__(self, local: threading.Event, device: Any) -> None:
        super().__init__()
        self.local = local  # rank 0: the store's stop request; the others: never set here
        self.device = device

    def set(self) -> None:
        """Stop (all ranks, at the next check)."""
        self.local.set()

    def is_set(self) -> bool:
        """True on every rank once any rank's local stop is set."""
        import torch
        import torch.distributed as dist

        flag = torch.tensor([1.0 if self.local.is_set() else 0.0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())


def free_address() -> tuple[str, int]:
    """This node's address and a free port on it (where rank 0 listens for the others)."""
    ray = import_ray()
    with socket.socket() as probe:
        probe.bind(("", 0))
        return ray.util.get_node_ip_address(), int(probe.getsockname()[1])


def train_rank(service: Any, run: RunRecord, rank: int, world: int, address: tuple[str, int],
               heartbeat_timeout: float) -> str:
    """The body of one rank's Ray task: join the process group, train this rank's shard; rank 0 records the run."""
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    from core import data as datasets
    from core import training
    from core.runs import StopFlag
    from core.worker import Worker

    ray = import_ray()
    cuda = bool(ray.get_gpu_ids())
    if cuda:
        torch.cuda.set_device(0)  # Ray shows each rank only the GPU of its bundle
    timeout = paths.dist_timeout()
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"tcp://{address[0]}:{address[1]}",
                            rank=rank, world_size=world, timeout=timedelta(seconds=timeout))
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")

    def wrap(model: torch.nn.Module) -> torch.nn.Module:
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=[0] if cuda else None)

    name = f"ray-{socket.gethostname()}-{os.getpid()}"
    try:
        with tempfile.TemporaryDirectory(prefix="cnn-explorer-run-") as scratch:
            store = RemoteStore(service, Path(scratch), heartbeat_timeout, token=run.generation)
            if run.resume:  # every rank continues from the same training state: the same steps follow
                store.fetch_checkpoints(run.id)
            if rank == 0:
                stop = AgreedStop(StopFlag(store, run.id, token=run.generation), device)
                Worker(store, device="cuda" if cuda else "cpu", name=name).train(
                    run, shard=(0, world), wrap=wrap, stop=stop)
                return _send_last(store, run.id)
            config = run.train_config()
            if config.device == "auto":
                config = dataclasses.replace(config, device="cuda" if cuda else "cpu")
            data = datasets.load(config.validate().dataset)  # as a worker loads it for rank 0
            folder = store.checkpoint_dir(run.id)
            resume_from = folder if run.resume and store.checkpoints(run.id).get("last") else None
            training.fit(config, data, [], stop=AgreedStop(threading.Event(), device), shard=(rank, world),
                         wrap=wrap, resume_from=resume_from)
            return "trained"
    finally:
        dist.destroy_process_group()


def train_across(service: Any, run_id: str, processes: int, bundle: dict[str, float],
                 heartbeat_timeout: float) -> str:
    """The body of a multi-process run's coordinating task: reserve its GPUs (or CPUs), claim it, start its ranks.

    The ranks share a placement group (packed onto as few nodes as fit), so they start together or not at all;
    the run stays queued while it waits for them. A rank that dies ends the others at once.
    """
    ray = import_ray()
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    group = placement_group([dict(bundle)] * processes, strategy="PACK")
    ray.get(group.ready())
    try:
        name = f"ray-job-{socket.gethostname()}-{os.getpid()}"
        run = wait_for(service.call.remote("claim", (name,), {"run_id": run_id}))
        if run is None:
            return "not queued"
        with tempfile.TemporaryDirectory() as scratch, \
                Heartbeat(RemoteStore(service, Path(scratch), heartbeat_timeout), run_id,
                          token=run.generation):
            # Heartbeats from here on cover the ranks' start; rank 0 sends its own once it trains.
            place = [PlacementGroupSchedulingStrategy(placement_group=group, placement_group_bundle_index=i)
                     for i in range(processes)]
            address = ray.get(ray.remote(free_address).options(num_cpus=0, scheduling_strategy=place[0]).remote())
            rank_task = ray.remote(train_rank)
            ranks = [rank_task.options(max_retries=0, num_cpus=bundle.get("CPU", 1), num_gpus=bundle.get("GPU", 0),
                                       scheduling_strategy=place[i]).remote(
                     service, run, i, processes, address, heartbeat_timeout) for i in range(processes)]
            pending = list(ranks)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                try:
                    ray.get(done[0])
                except Exception:
                    for other in pending:  # they would wait for the lost rank until the process-group timeout
                        ray.cancel(other, force=True)
                    raise
        return str(ray.get(ranks[0]))
    finally:
        remove_placement_group(group)


# On the server: the executor ------------------------------------------------------------------------------------------


class RayExecutor:
    """Serves the queue of the store in ``state`` with Ray tasks, one per run, placed by Ray on any node.

    ``ensure()`` returns at once: a daemon thread connects to Ray (or starts a local instance), starts the store
    actor on this node, then submits every queued run as a task. The run stays ``queued`` in the store until its
    task starts on a node and claims it, so cancelling a run that waits for a GPU works as with local workers.
    ``init_options`` go to ``ray.init`` (tests: ``num_cpus=2, include_dashboard=False``).
    """

    def __init__(self, state: Path, address: str | None = None, cpus_per_run: float | None = None,
                 init_options: dict[str, Any] | None = None, poll: float = 0.5,
                 heartbeat_timeout: float | None = None) -> None:
        self.ray = import_ray()
        self.store = RunStore(Path(state), heartbeat_timeout)
        self.address = address
        self.cpus_per_run = cpus_per_run if cpus_per_run is not None else configured_cpus()
        self.init_options = dict(init_options or {})
        self.poll = poll
        self.problem: str | None = None  # why Ray could not be reached, for the app to show
        self.tasks: dict[str, Any] = {}  # run id -> ObjectRef of the task that trains (or will train) it
        self.failures: dict[str, int] = {}  # run id -> its tasks that failed before claiming it, in a row
        self.retry_at: dict[str, float] = {}  # run id -> when (time.monotonic) its next task may be sent
        self.retry_first, self.retry_most = RETRY_FIRST, RETRY_MOST
        self.started_ray = False
        self._service: Any = None
        self._task: Any = None  # train_on_node as a Ray remote function
        self._job: Any = None  # train_across, for runs of several processes
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        atexit.register(self.close)

    @property
    def threads_per_run(self) -> int:
        """CPU threads a run holds: the CPUs it asks Ray for (counted on this machine, though Ray may place it
        on another node)."""
        return max(math.ceil(self.cpus_per_run), 1)

    # Life cycle -------------------------------------------------------------------------------------------------

    def ensure(self) -> None:
        """Start serving the queue in the background (connecting to Ray first), unless already serving."""
        with self._lock:
            if self._closed.is_set() or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(target=self._serve, name="ray-executor", daemon=True)
            self._thread.start()

    @property
    def serving(self) -> bool:
        """Whether the thread that serves the queue is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Connect to Ray (or start a local instance) and start the store actor on this node; idempotent."""
        ray = self.ray
        with self._lock:
            if self._service is not None:
                return
            if not ray.is_initialized():
                options = {"include_dashboard": False, "log_to_driver": False, **self.init_options}
                ray.init(address=self.address, **options)
                self.started_ray = True
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
            # Its state is on disk: Ray restarts its process whenever it dies (max_restarts=-1), and a call in
            # flight then fails as a StoreActorLostError, which a trainer's writes wait out (core.claims).
            actor = ray.remote(StoreService).options(num_cpus=0, max_concurrency=8, scheduling_strategy=here,
                                                     runtime_env=self._runtime_env(), max_restarts=-1)
            self._service = actor.remote(str(self.store.root), self.store.heartbeat_timeout)
            self._task = ray.remote(train_on_node)
            self._job = ray.remote(train_across)
            ray.get(self._service.call.remote("check", (), {}))  # fails here, not in a task, if it cannot start
            self.problem = None

    def close(self, timeout: float = 20) -> None:
        """Ask running runs to stop (checkpoints kept), wait up to ``timeout`` s, then release Ray."""
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        ray = self.ray
        if not ray.is_initialized():
            return
        running = []
        for run_id, task in list(self.tasks.items()):
            try:
                if self.store.run(run_id).status == "running":
                    self.store.request_stop(run_id)
                    running.append(task)
                else:  # still waiting for resources: it stays queued for the next server
                    ray.cancel(task)
            except Exception as error:  # noqa: BLE001 (closing must go on whatever one run's state is)
                log.warning("while closing, run %s: %s", run_id, error)
        if running:
            ray.wait(running, num_returns=len(running), timeout=timeout)
        if self._service is not None:
            ray.kill(self._service)
            self._service = None
        if self.started_ray:
            ray.shutdown()

    # Serving the queue ------------------------------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            self.start()
        except Exception as error:  # noqa: BLE001 (no cluster at that address, a refused connection…)
            self.problem = f"Ray could not be started or reached ({type(error).__name__}: {error})."
            log.error("%s", self.problem)
            return
        while not self._closed.is_set():
            try:
                self.revive()
                self.dispatch()
            except ExplorerError as error:  # a busy or damaged store: try again at the next look
                log.warning("cannot read the queue: %s", error)
            self._closed.wait(self.poll)

    def revive(self, timeout: float = 30) -> bool:
        """Start another store actor if this one is dead for good (killed with ``ray.kill``, or out of restarts):
        runs queued from then on reach the new one. True when one was started."""
        ray, service = self.ray, self._service
        if service is None:
            return False
        try:
            ray.get(service.ping.remote(), timeout=timeout)
            return False
        except (ray.exceptions.GetTimeoutError, ray.exceptions.ActorUnavailableError):
            return False  # busy, or being restarted by Ray: ask again at the next look
        except ray.exceptions.RayActorError as error:
            log.warning("the run store's Ray actor is gone (%s); starting another", type(error).__name__)
        with self._lock:
            if self._service is service:
                self._service = None
        self.start()
        return True

    def dispatch(self) -> int:
        """Submit a task for every queued run that has none; note tasks that died. How many were submitted."""
        self.reap()
        submitted = 0
        now = time.monotonic()
        queued = self.store.queued()
        for run_id in [r for r in self.failures if r not in queued and r not in self.tasks]:  # cancelled meanwhile
            self.failures.pop(run_id)
            self.retry_at.pop(run_id, None)
        if not self.failures and self.problem and self.problem.startswith("The Ray task of run"):
            self.problem = None
        for run_id in queued:
            if run_id not in self.tasks and not self._closed.is_set() and self.retry_at.get(run_id, 0) <= now:
                task = self._submit(self.store.run(run_id))
                self.retry_at.pop(run_id, None)
                if task is not None:
                    self.tasks[run_id] = task
                    submitted += 1
        return submitted

    def reap(self) -> list[str]:
        """Forget finished tasks; a run whose task died mid-run reads as interrupted at once. Their run ids."""
        if not self.tasks:
            return []
        ray = self.ray
        refs = list(self.tasks.values())
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        finished = [run_id for run_id, task in self.tasks.items() if task in done]
        for run_id in finished:
            task = self.tasks.pop(run_id)
            try:
                ray.get(task)
                self.failures.pop(run_id, None)
            except Exception as error:  # noqa: BLE001 (the worker process or its node died: no status was written)
                status = self.store.run(run_id).status
                if status == "queued":
                    self._failed_before_claim(run_id, error)
                    continue
                self.failures.pop(run_id, None)
                log.warning("the task of run %s ended without finishing it: %s", run_id, error)
                if status == "running":
                    self.store.update_run(run_id, heartbeat=0.0)  # stale now: interrupted, resumable elsewhere
        return finished

    def _failed_before_claim(self, run_id: str, error: BaseException) -> None:
        """A run's task failed before it could claim the run (its runtime environment, a lost actor): send another
        after a pause that doubles each time (said as ``problem``), and after ``retry_most`` such tasks mark the run
        failed with the reason. Only the first failure's traceback is logged."""
        count = self.failures[run_id] = self.failures.get(run_id, 0) + 1
        lines = str(error).strip().splitlines()
        reason = lines[-1] if lines and ":" in lines[-1] else f"{type(error).__name__}: {lines[-1] if lines else ''}"
        if count == 1:
            log.warning("the task of run %s failed before it could start: %s", run_id, error)
        if count >= self.retry_most:
            self.failures.pop(run_id)
            self.retry_at.pop(run_id, None)
            log.error("run %s: %d tasks failed before it could start; it fails", run_id, count)
            self.store.update_run(run_id, status="failed", message=(
                f"Its Ray task failed {count} times in a row before it could start training ({reason}); the "
                "executor stopped trying. Resume queues it again."))
            return
        delay = min(self.retry_first * 2 ** (count - 1), RETRY_LONGEST)
        self.retry_at[run_id] = time.monotonic() + delay
        self.problem = (f"The Ray task of run {run_id} failed before it could start ({reason}); attempt {count + 1} "
                        f"of {self.retry_most} in {delay:g} s.")
        log.warning("run %s: task %d of %d failed before it could start (%s); the next in %g s", run_id, count,
                    self.retry_most, reason, delay)

    def resources(self, run: RunRecord) -> dict[str, float] | None:
        """What a run's task asks Ray for: a GPU for a CUDA run (``auto`` too, on a cluster with GPUs), else CPUs.

        None, with the run marked failed, when it asks for a GPU the cluster does not have.
        """
        device = str(run.config.get("device", "auto"))
        gpus = float(self.ray.cluster_resources().get("GPU", 0))
        if device.startswith("cuda") and not gpus:
            self.store.update_run(run.id, status="failed",
                                  message="This run asks for a CUDA GPU, and no node of the Ray cluster has one.")
            return None
        if device.startswith("cuda") or (device == "auto" and gpus):
            return {"num_gpus": 1, "num_cpus": 1}
        return {"num_gpus": 0, "num_cpus": self.cpus_per_run}

    def _submit(self, run: RunRecord) -> Any:
        resources = self.resources(run)
        if resources is None:
            return None
        processes = run.processes or 1
        if processes > 1:  # a coordinating task (no CPU of its own) reserves the ranks' resources together
            bundle = {"CPU": float(resources["num_cpus"]), "GPU": float(resources["num_gpus"])}
            job = self._job.options(num_cpus=0, max_retries=0, retry_exceptions=False,
                                    runtime_env=self._runtime_env())
            return job.remote(self._service, run.id, processes, {k: v for k, v in bundle.items() if v},
                              self.store.heartbeat_timeout)
        task = self._task.options(max_retries=0, retry_exceptions=False, runtime_env=self._runtime_env(),
                                  **resources)
        return task.remote(self._service, run.id, self.store.heartbeat_timeout)

    def _runtime_env(self) -> dict[str, Any]:
        """This code on every node (uploaded when joining a cluster); data sets cached under the state folder."""
        variables = {paths.STATE_ENV: str(self.store.root)}
        if self.address is None:  # a local instance: the nodes are this machine
            variables["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
            return {"env_vars": variables}
        return {"env_vars": variables, "py_modules": [str(ROOT / "core")]}


# Command line ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m core.executors``: serve the queue on Ray, or queue one run for several processes."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m core.executors",
        description="Train the run store's queue on a Ray cluster; queue runs that several GPUs train together.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="train queued runs as Ray tasks until Ctrl-C (no app needed)")
    serve.add_argument("--state", type=Path, help="state folder (default: $CNN_EXPLORER_STATE or ./state)")
    serve.add_argument("--address", default=paths.raw(RAY_ADDRESS_ENV),
                       help=f"Ray cluster this machine has joined (auto, HEAD:6379; default ${RAY_ADDRESS_ENV}); "
                            "none: start a local Ray instance")
    serve.add_argument("--parent", type=int, help="stop when this process (the web server) is gone")
    queue = commands.add_parser("queue", help="queue one run (python -m core.train's flags) for N processes",
                                epilog="example: python -m core.executors queue --processes 2 --arch resnet18 "
                                       "--dataset cifar10 --epochs 30")
    queue.add_argument("--processes", type=int, default=1, help="processes (GPUs, on a CUDA cluster) that train it")
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if args.command == "queue":
            from core import train

            if args.processes < 1:
                parser.error("--processes must be at least 1")
            flags, config = train.parse(rest)
            store = RunStore(flags.state_dir) if flags.state_dir else RunStore()
            run_id = store.create_run(config, processes=args.processes)
            print(f"run {run_id} queued for {args.processes} process(es) in {store.root}: the Ray executor "
                  "(the app's, or `python -m core.executors serve`) trains it")
            return 0
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        from core import ray_serve

        address = None if args.address in (None, "", "none") else configured_address(args.address)
        return ray_serve.serve(args.state if args.state else RunStore().root, address, args.parent)
    except ExplorerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
