"""The Ray executor: each run is a Ray task reserving ``threads`` CPUs, on a cluster or a local instance.

Nodes need not share a filesystem with the driver. A run's task (a Ray *generator* task):

1. receives the run's ``config.json``, and its ``checkpoint.pt`` / ``episodes.csv`` when the driver
   has them (a resumed run), and writes them into a scratch folder on its node;
2. runs ``python -m harness.sweep.runner`` there (the same runner as the local executor, in its own
   process group, dying with the Ray worker);
3. every ``sync_seconds`` yields the files of the folder that changed (the checkpoint first, so the
   episodes shipped with it always reach at least its frame count), and at the end yields the rest.

The driver writes what arrives into ``<results dir>/<suite>/<run id>/`` (episodes before checkpoint,
status last, each file atomically), so the driver's copy is at every moment a valid run folder that
resumes like a local one: killing the driver loses at most the last ``sync_seconds`` of progress
beyond the last checkpoint. Ctrl-C asks every task (through a small control actor) to interrupt its
run cleanly, waits for the final files, and cancels what is left after the grace period.

``ray`` is an optional dependency (``pip install 'async-rl-harness[ray]'``), imported only here.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from harness import store
from harness.sweep import plan
from harness.sweep.local import Stopper, log_tail, prepare, record_outcome, report_outcome, start_order
from harness.sweep.plan import RunRecord

SYNC_SECONDS = 2.0
#: read in this order on the node (checkpoint before episodes) ...
READ_ORDER = ("checkpoint.pt", "config.json", "episodes.csv", "evals.csv", "runner.log", "progress.json", "status.json")
#: ... and written in this order on the driver (episodes before checkpoint, status last)
WRITE_ORDER = ("config.json", "episodes.csv", "evals.csv", "runner.log", "checkpoint.pt", "progress.json", "status.json")
SHIPPED_TO_NODE = ("checkpoint.pt", "episodes.csv", "status.json", "runner.log")
#: environment variable of a node's Ray workers: the folder under which runs keep their scratch
#: copies on that node (default: the system's temporary folder)
SCRATCH_ENV = "HARNESS_RAY_SCRATCH"


class RayUnavailable(RuntimeError):
    """ray is not installed or the cluster cannot be reached (one-line message)."""


def import_ray(address: str | None = None):
    """``ray``, imported; for a loopback ``address`` (a cluster on this machine bound to 127.0.0.1),
    configured first so that this driver reaches it over loopback (see ``use_loopback``)."""
    if address and is_loopback(address):
        use_loopback()
    try:
        import ray
    except ImportError:
        raise RayUnavailable("--executor ray needs the optional dependency ray: "
                             "pip install 'async-rl-harness[ray]' (or pip install 'ray>=2.9')") from None
    return ray


# ------------------------------------------------------------------------------------------------
# What runs on the node
def _snapshot(run_dir: Path, sent: dict[str, tuple[int, int]], force: bool = False) -> dict:
    """Files of ``run_dir`` that changed since ``sent`` (updated in place), and those that vanished."""
    files: dict[str, bytes] = {}
    for name in READ_ORDER:
        path = run_dir / name
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        key = (st.st_mtime_ns, st.st_size)
        if force or sent.get(name) != key:
            try:
                files[name] = path.read_bytes()
            except FileNotFoundError:
                continue
            sent[name] = key
    gone = [name for name in list(sent) if not (run_dir / name).exists()]
    for name in gone:
        del sent[name]
    return {"files": files, "deleted": gone}


def node_label(node: dict) -> str:
    """How a Ray node is named in the sweep's output and in ``harness status``: host, IP and the
    start of Ray's node id (several nodes can share a host and an IP)."""
    return f"{node.get('hostname', '?')} {node.get('ip', '?')} node {str(node.get('node_id') or '?')[:8]}"


def remote_run(config: dict, run_id: str, files: dict[str, bytes], control, sync_seconds: float,
               driver_cwd: str | None):
    """Body of the Ray generator task (see the module docstring)."""
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile

    import ray

    from harness.sweep.runner import NODE_ENV, PARENT_ENV

    scratch = os.environ.get(SCRATCH_ENV) or None
    if scratch:
        Path(scratch).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="harness-ray-", dir=scratch))
    run_dir = work / run_id
    run_dir.mkdir()
    for name, data in files.items():
        (run_dir / name).write_bytes(data)
    store.write_json_atomic(run_dir / "config.json", config)
    sent: dict[str, tuple[int, int]] = {}
    _snapshot(run_dir, sent)  # what the driver already has is not shipped back
    node_id = ray.get_runtime_context().get_node_id()
    node = {"hostname": os.uname().nodename, "ip": ray.util.get_node_ip_address(), "node_id": node_id}
    env = dict(os.environ)
    env[PARENT_ENV] = str(os.getpid())
    env[NODE_ENV] = node_label(node)
    if driver_cwd and Path(driver_cwd).is_dir():  # import paths relative to the driver's folder (same machine)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (driver_cwd, env.get("PYTHONPATH")) if p)
    log = open(run_dir / plan.RUNNER_LOG, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "harness.sweep.runner", str(run_dir)], cwd=work,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, close_fds=True, env=env)
    interrupted = False
    try:
        yield {"kind": "started", "node": node, **_snapshot(run_dir, sent)}  # only what changed since shipping
        while proc.poll() is None:
            deadline = time.monotonic() + sync_seconds
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            if not interrupted and ray.get(control.stopped.remote()):
                interrupted = True
                os.killpg(proc.pid, signal.SIGINT)
            if proc.poll() is None:
                yield {"kind": "sync", **_snapshot(run_dir, sent)}
        log.close()
        yield {"kind": "final", "rc": proc.returncode, **_snapshot(run_dir, sent)}
    finally:
        if proc.poll() is None:  # cancelled: leave no process behind
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        try:
            log.close()
        finally:
            shutil.rmtree(work, ignore_errors=True)


def remote_run_once(config: dict, run_id: str, files: dict[str, bytes], control, sync_seconds: float,
                    driver_cwd: str | None) -> dict:
    """The same run as :func:`remote_run`, as a plain task returning one final message (Ray Client,
    ``ray://`` addresses, has no streaming generators): the files come back when the run ends."""
    merged: dict = {"kind": "final", "files": {}, "deleted": [], "rc": None, "node": None}
    for msg in remote_run(config, run_id, files, control, sync_seconds, driver_cwd):
        for name in msg.get("deleted") or []:
            merged["files"].pop(name, None)
            merged["deleted"].append(name)
        for name, data in (msg.get("files") or {}).items():
            merged["files"][name] = data
            if name in merged["deleted"]:
                merged["deleted"].remove(name)
        merged["node"] = msg.get("node") or merged["node"]
        if msg.get("kind") == "final":
            merged["rc"] = msg.get("rc")
    return merged


class _Control:
    """A flag every task polls: set when the driver is asked to stop."""

    def __init__(self):
        self._stop = False

    def stop(self) -> None:
        self._stop = True

    def stopped(self) -> bool:
        return self._stop


# ------------------------------------------------------------------------------------------------
# The driver
def apply_files(run_dir: Path, msg: dict) -> None:
    """Write shipped files into the driver's run folder (atomically, in WRITE_ORDER)."""
    files = msg.get("files") or {}
    for name in WRITE_ORDER:
        if name not in files:
            continue
        data = files[name]
        store.write_atomic(run_dir / name, lambda f: f.write(data))
    for name in msg.get("deleted") or []:
        if name in READ_ORDER:
            (run_dir / name).unlink(missing_ok=True)


#: Ray's switch that, set to 0, makes it resolve this host's address to 127.0.0.1
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def is_loopback(address: str) -> bool:
    host = address.split("://")[-1].rsplit(":", 1)[0].strip("[]")
    return host == "localhost" or host.startswith("127.") or host == "::1"


def use_loopback() -> None:
    """Ray rewrites a 127.x address to this host's network IP, where a cluster bound to loopback
    (``ray start --node-ip-address=127.0.0.1``) does not listen, and the driver then retries for
    minutes. Ray's switch ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes it resolve this host to
    127.0.0.1 instead; it is read when ray is imported, so it is set in the environment before that,
    and in ray's constants if ray is already imported. Only for drivers: they start no node."""
    os.environ.setdefault(LOOPBACK_ENV, "0")
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None and os.environ[LOOPBACK_ENV] == "0":
        constants.ENABLE_RAY_CLUSTER = False


def is_auth_error(exc: BaseException) -> bool:
    """Ray refused this process's token (Ray >= 2.52 token authentication; on by default for local
    clusters from 2.59 and wherever a token file exists)."""
    auth_error = getattr(getattr(import_ray(), "exceptions", None), "AuthenticationError", None)
    seen = set()
    while exc is not None and id(exc) not in seen:  # ray.init wraps it: ConnectionError from AuthenticationError
        seen.add(id(exc))
        if auth_error is not None and isinstance(exc, auth_error):
            return True
        text = f"{type(exc).__name__} {exc}".lower()
        if "authenticationerror" in text or "invalidauthtoken" in text or "auth_token" in text:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def auth_help(where: str, detail: str) -> str:
    """One line: what failed and the ways to give the driver the cluster's token."""
    return (f"the Ray cluster {where} refused this driver's authentication token ({detail}): give the driver "
            "the token the cluster was started with (copy the head node's ~/.ray/auth_token to this "
            "machine's ~/.ray/auth_token, or set RAY_AUTH_TOKEN to it, or RAY_AUTH_TOKEN_PATH to a file "
            "holding it), or start the cluster and the driver with RAY_AUTH_MODE=disabled on a trusted "
            "network; see README 'Running on a Ray cluster'")


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, max_parallel: int | None = None, num_cpus: int | None = None,
                 grace_seconds: float = 60.0, sync_seconds: float = SYNC_SECONDS, streaming: bool | None = None):
        self.address = address
        # Ray Client (ray://) has no streaming generators: runs then report back only when they end
        self.streaming = not (address or "").startswith("ray://") if streaming is None else streaming
        self.max_parallel = max_parallel
        self.num_cpus = num_cpus
        self.grace_seconds = grace_seconds
        self.sync_seconds = sync_seconds
        self.ray = None
        self._owns_ray = False

    # -- cluster ------------------------------------------------------------------------------
    def connect(self) -> None:
        ray = import_ray(self.address)
        self.ray = ray
        if ray.is_initialized():
            return
        kwargs = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False,
                  "configure_logging": True}
        try:
            if self.address:
                ray.init(address=self.address, **kwargs)
            else:
                ray.init(num_cpus=self.num_cpus or plan.machine_cores(), **kwargs)
        except Exception as exc:  # noqa: BLE001 - e.g. ConnectionError: no cluster at that address
            where = f"at {self.address}" if self.address else "(local instance)"
            detail = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            if is_auth_error(exc):
                raise RayUnavailable(auth_help(where, detail)) from None
            raise RayUnavailable(f"cannot start or reach a Ray cluster {where}: {detail}") from None
        self._owns_ray = True

    def shutdown(self) -> None:
        if self.ray is not None and self._owns_ray:
            self.ray.shutdown()
            self._owns_ray = False

    def cpus(self) -> tuple[float, float]:
        """(total CPUs of the cluster, CPUs of its largest node)."""
        total = float(self.ray.cluster_resources().get("CPU", 0.0))
        largest = max((float(n.get("Resources", {}).get("CPU", 0.0)) for n in self.ray.nodes() if n.get("Alive")),
                      default=total)
        return total, largest

    def describe(self) -> str:
        total, largest = self.cpus()
        where = self.address or "local instance"
        mp = f", at most {self.max_parallel} at once" if self.max_parallel else ""
        return f"ray executor ({where}): {total:g} CPUs, largest node {largest:g}{mp}"

    # -- the sweep ----------------------------------------------------------------------------
    def run(self, todo: list[RunRecord], display, stopper: Stopper) -> bool:
        ray = self.ray
        task = ray.remote(max_retries=0)(remote_run if self.streaming else remote_run_once)
        control = ray.remote(num_cpus=0)(_Control).remote()
        pending = start_order(todo)
        inflight: dict = {}  # generator -> (record, submitted monotonic)
        stopping_since: float | None = None
        cancelled = False
        total, largest = self.cpus()
        last_cpus = time.monotonic()
        driver_cwd = os.getcwd()
        try:
            while pending or inflight:
                now = time.monotonic()
                if now - last_cpus > 30:  # clusters grow and shrink
                    total, largest = self.cpus()
                    last_cpus = now
                if stopper.count and stopping_since is None:
                    stopping_since = now
                    display.event(f"stopping: interrupting {len(inflight)} run(s) (Ctrl-C again to cancel them at once)",
                                  "bold magenta")
                    control.stop.remote()
                if stopping_since is not None and not cancelled and inflight and (
                        stopper.count >= 2 or now - stopping_since > self.grace_seconds):
                    cancelled = True
                    display.event(f"cancelling {len(inflight)} Ray task(s)", "bold red")
                    for gen in inflight:
                        ray.cancel(gen, force=True)
                if stopping_since is None:
                    limit = self.max_parallel or max(1, int(total))
                    while pending and len(inflight) < limit:
                        rec = pending.pop(0)
                        need = float(rec.cores)
                        if need > largest:
                            display.event(f"warning: {rec.run_id} needs {rec.threads} threads; the largest node has "
                                          f"{largest:g} CPUs: running it there, oversubscribed", "yellow")
                            need = largest
                        prepare(rec)
                        (rec.dir / "evals.csv").unlink(missing_ok=True)  # as the engine does when it (re)starts
                        files = {n: (rec.dir / n).read_bytes() for n in SHIPPED_TO_NODE if (rec.dir / n).exists()}
                        gen = task.options(num_cpus=need, name=f"harness:{rec.run_id}").remote(
                            rec.run.config.to_dict(), rec.run_id, files, control, self.sync_seconds, driver_cwd)
                        inflight[gen] = (rec, now)
                        rec.state = "queued"
                        if not self.streaming:
                            display.event(f"submit   {rec.run_id}")
                elif not inflight:
                    break

                ready, _ = ray.wait(list(inflight), num_returns=len(inflight), timeout=0.5) if inflight else ([], [])
                for gen in ready:
                    rec, submitted = inflight[gen]
                    try:
                        ref = next(gen) if self.streaming else gen
                    except StopIteration:
                        del inflight[gen]
                        self._settle(rec, None, stopping_since is not None, display, now - submitted)
                        continue
                    try:
                        msg = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - task error, node lost, cancelled
                        del inflight[gen]
                        text = str(exc).strip().splitlines()
                        if stopping_since is not None:
                            why, interrupted = "cancelled by the sweep after Ctrl-C", True
                        elif isinstance(exc, ray.exceptions.RayTaskError):  # the task's own code raised
                            why, interrupted = f"Ray task raised: {text[-1] if text else type(exc).__name__}", False
                        else:  # worker or node lost: not the run's fault, resume it next time
                            why, interrupted = f"Ray task lost: {type(exc).__name__}: {text[0] if text else ''}", True
                        self._settle(rec, why, interrupted, display, now - submitted)
                        continue
                    self._apply(rec, msg, display)
                    if not self.streaming:  # one message per task: the run is over
                        del inflight[gen]
                        self._settle(rec, None, stopping_since is not None, display, now - submitted)
                display.refresh()
        finally:
            for gen in list(inflight):
                ray.cancel(gen, force=True)
                rec, _ = inflight.pop(gen)
                self._settle(rec, "cancelled", True, display, None)
            try:
                ray.kill(control)
            except Exception:  # noqa: BLE001
                pass
        return stopping_since is not None

    def _apply(self, rec: RunRecord, msg: dict, display) -> None:
        apply_files(rec.dir, msg)
        if msg.get("kind") == "started":
            node = msg.get("node") or {}
            rec.extra["node"] = node
            rec.node = node_label(node)
            rec.state = "running"
            display.event(f"start    {rec.run_id} on {rec.node}")
        prog = store.read_json(rec.dir / plan.PROGRESS_FILE)
        if prog:
            rec.frames_done = int(prog.get("frames", rec.frames_done))
            rec.fps = prog.get("frames_per_second")
            rec.node = prog.get("node") or rec.node
        if msg.get("kind") == "final":
            rec.extra["rc"] = msg.get("rc")

    def _settle(self, rec: RunRecord, why: str | None, stopping: bool, display, seconds: float | None) -> None:
        plan.read_record(rec)
        if rec.state not in store.FINAL_STATES:
            rc = rec.extra.get("rc")
            if why is None:
                why = f"runner exited with code {rc}" if rc is not None else "Ray task ended without a final status"
                tail = log_tail(rec.dir / plan.RUNNER_LOG)
                if tail:
                    why += f"; last output: {tail}"
            state = "interrupted" if stopping else "failed"
            if rec.dir.exists() and (rec.dir / "config.json").exists():
                record_outcome(rec, state, why)
            plan.read_record(rec)
        (rec.dir / plan.PROGRESS_FILE).unlink(missing_ok=True)
        report_outcome(display, rec, seconds)
