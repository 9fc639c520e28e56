"""Run the same capture on every worker of a Dask cluster, at the same time.

    from dask.distributed import Client
    client = Client("scheduler:8786")
    t = bpfnb.fleet.capture(client, C_TEXT, duration=10)        # a BPF C program
    t = bpfnb.fleet.capture(client, "runqlat", duration=10)     # a tool of bpfnb.tools
    t.hist()                  # one frame, a `host` column first
    t.meta["hosts"]           # per host: kernel, lost counts, attach points, error

How the captures are lined up: every worker compiles and attaches, then
reports to the client (a distributed Queue) and polls its buffers while it
waits for the start signal (a distributed Event). The client sets the
signal once every worker has attached or failed, so the capture windows
start together; each worker's duration is counted from the signal.
Tools attach inside the tool function: their workers wait in the tool's
`on_attach` hook, and a tool's duration counts from that hook's return,
so its window after the signal is the full duration too (the wait is
recorded in meta["hosts"][host]["waited_s"]).

A worker that fails (no privileges, no bcc, a probe missing there) is
reported in meta["hosts"][host]["error"] and meta["fleet"]["failed"];
the others' data is kept. Only when every worker fails is it an error.
"""

from __future__ import annotations

import inspect
import platform
import socket
import time
import uuid
from dataclasses import dataclass, field

import pandas as pd

from ..errors import BpfnbError, did_you_mean
from ..trace import Trace

HOST = "host"
ATTACH_TIMEOUT_S = 120.0
STOP_CHECK_S = 0.25
PROGRAM_OPTIONS = ("defines", "attach", "pid", "event_limit", "buffer_pages", "per_cpu", "cflags",
                   "hist_types", "interval", "hist_interval", "spill_dir", "memory_limit")
# per-host facts that stay in meta["hosts"], not in the fleet trace's meta
_HOST_META = ("host", "kernel", "bcc_version", "start_wall", "end_wall", "stopped_by",
              "monotonic_to_wall_ns", "spill")

__all__ = ["capture", "start", "FleetRun", "FleetError", "host_labels", "merge", "summary", "wall_time", "HOST"]


class FleetError(BpfnbError):
    """A fleet capture cannot run as asked (no client, no workers, bad options), or every host failed."""

    def __init__(self, message: str, trace: Trace | None = None):
        super().__init__(message)
        self.trace = trace


@dataclass
class Job:
    """What every worker runs (picklable: sent to the workers)."""

    run_id: str
    source: str | None
    tool: str | None
    duration: float | None
    options: dict
    labels: dict                         # worker address -> host label
    start_timeout: float = ATTACH_TIMEOUT_S
    overrides: dict = field(default_factory=dict)   # worker address -> options

    @property
    def ready_queue(self) -> str:
        return f"bpfnb-fleet-{self.run_id}-ready"

    @property
    def go_event(self) -> str:
        return f"bpfnb-fleet-{self.run_id}-go"

    @property
    def stop_event(self) -> str:
        return f"bpfnb-fleet-{self.run_id}-stop"


# -- client side -------------------------------------------------------------------------
def capture(client, program_or_tool: str, duration: float | None = 5, *, workers=None,
            worker_options: dict | None = None, attach_timeout: float = ATTACH_TIMEOUT_S,
            on_start=None, **options) -> Trace:
    """Capture on every worker (or `workers`) at once; one Trace with a `host` column.

    program_or_tool: BPF C text, or the name of a tool in bpfnb.tools (run
    as `bpfnb.tools.NAME(duration=duration, **options)` on each worker).
    options: for C, those of bpfnb.capture (defines, attach, pid,
    event_limit, spill_dir, memory_limit, ...); for a tool, its own.
    workers: addresses, host labels or indexes into the sorted worker list.
    worker_options: {worker: {option: value}} overriding options on one
    worker (a pid that differs per host, or a probe only one host has).
    on_start(run): called on the client once every worker has attached
    and the capture windows have begun (start the workload there).
    A Ctrl-C while waiting stops every worker and returns what they have.
    """
    run = start(client, program_or_tool, duration, workers=workers, worker_options=worker_options,
                attach_timeout=attach_timeout, **options)
    try:
        if on_start is not None:
            on_start(run)
        return run.result()
    except KeyboardInterrupt:
        run.stop()
        return run.result()


def start(client, program_or_tool: str, duration: float | None = 5, *, workers=None,
          worker_options: dict | None = None, attach_timeout: float = ATTACH_TIMEOUT_S,
          **options) -> "FleetRun":
    """Start a fleet capture; return once every worker has attached (or failed).

    The returned FleetRun's .result() waits for the end and merges.
    """
    from distributed import Event, Queue

    client = _client(client)
    source, tool = _program_or_tool(program_or_tool)
    if source is not None:
        _check_program_options(options)
    if tool is not None and duration is None:
        raise FleetError(f"tool {tool!r} on a fleet needs a duration (e.g. duration=10): "
                         "tools cannot be stopped from the client")
    addresses = _choose_workers(client, workers)
    labels = host_labels(client, addresses)
    overrides = _overrides(worker_options, addresses, labels)
    job = Job(uuid.uuid4().hex[:12], source, tool, duration, options, labels,
              start_timeout=attach_timeout, overrides=overrides)
    queue = Queue(job.ready_queue, client=client)
    futures = {addr: client.submit(_worker_main, job, key=f"bpfnb-fleet-{job.run_id}-{i}",
                                   workers=[addr], allow_other_workers=False, pure=False)
               for i, addr in enumerate(addresses)}
    run = FleetRun(client, job, futures)
    try:
        run._wait_ready(queue, attach_timeout)
    except BaseException:  # interrupted while waiting: let the workers finish now, not at their timeout
        run.stop()
        Event(job.go_event, client=client).set()
        raise
    return run


class FleetRun:
    """A fleet capture under way: .ready (who attached), .stop(), .result()."""

    def __init__(self, client, job: Job, futures: dict):
        self.client = client
        self.job = job
        self.futures = futures
        self.ready: dict[str, dict] = {}     # host label -> readiness report
        self.go_wall: float | None = None
        self._result: Trace | None = None

    def _wait_ready(self, queue, timeout: float) -> None:
        from distributed import Event

        deadline = time.monotonic() + timeout
        by_address = {}
        while len(by_address) < len(self.futures) and time.monotonic() < deadline:
            # batch=True returns what is waiting without blocking (a get with a
            # timeout would log an error on the scheduler at every timeout)
            for message in queue.get(batch=True):
                by_address[message["address"]] = message
            if len(by_address) < len(self.futures):
                time.sleep(0.05)
            for addr, fut in self.futures.items():  # a worker that died never reports
                if addr not in by_address and fut.status in ("error", "cancelled", "lost"):
                    by_address[addr] = {"address": addr, "ok": False, "error": _future_error(fut)}
        for addr in self.futures:
            by_address.setdefault(addr, {"address": addr, "ok": False, "error": {
                "type": "FleetError", "message": f"not attached within {timeout:g} s (attach_timeout)"}})
        self.ready = {self.job.labels[a]: m for a, m in by_address.items()}
        self.go_wall = time.time()
        Event(self.job.go_event, client=self.client).set()

    @property
    def attached(self) -> list[str]:
        """Host labels of the workers whose probes are attached."""
        return [h for h, m in self.ready.items() if m.get("ok")]

    def stop(self) -> None:
        """Ask every worker to end its capture now (they return what they have)."""
        from distributed import Event

        Event(self.job.stop_event, client=self.client).set()

    def result(self, timeout: float | None = None) -> Trace:
        """Wait for every worker; one merged Trace (raises FleetError if all failed)."""
        if self._result is None:
            outcomes = []
            for addr, fut in self.futures.items():
                label = self.job.labels[addr]
                try:
                    outcomes.append(fut.result(timeout=timeout))
                except Exception as err:  # noqa: BLE001 - a worker died or the task failed
                    outcomes.append({"report": _report(addr, label, error=_error_dict(err)), "trace": None})
            self._result = merge(outcomes, fleet=self._fleet_meta())
            self._cleanup()
        trace = self._result
        if not trace.meta["fleet"]["ok"]:
            errors = "\n".join(f"  - {h}: {trace.meta['hosts'][h]['error']['message']}"
                               for h in trace.meta["fleet"]["failed"])
            raise FleetError(f"the capture failed on every host:\n{errors}", trace=trace)
        return trace

    def _fleet_meta(self) -> dict:
        return {"run_id": self.job.run_id, "duration": self.job.duration,
                "program": "tool" if self.job.tool else "C", "tool": self.job.tool,
                "options": {k: _jsonable(v) for k, v in self.job.options.items()},
                "go_wall": self.go_wall, "workers": list(self.job.labels.values())}

    def _cleanup(self) -> None:
        from distributed import Event

        for name in (self.job.go_event, self.job.stop_event):
            try:
                Event(name, client=self.client).clear()
            except Exception:  # noqa: BLE001 - the cluster may be gone; nothing to free then
                pass


def _future_error(fut) -> dict:
    try:
        return _error_dict(fut.exception(timeout=1))
    except Exception as err:  # noqa: BLE001
        return _error_dict(err)


def _client(client):
    if client is not None:
        return client
    try:
        from distributed import get_client

        return get_client()
    except (ImportError, ValueError):
        raise FleetError("no Dask client: create one first, e.g. `from dask.distributed import Client; "
                         "client = Client('scheduler-address:8786')` (pip install bpfnb[fleet])") from None


def _program_or_tool(program_or_tool) -> tuple[str | None, str | None]:
    if not isinstance(program_or_tool, str) or not program_or_tool.strip():
        raise FleetError("give BPF C text or a tool name (e.g. 'runqlat') as program_or_tool")
    text = program_or_tool.strip()
    if not text.isidentifier():
        return program_or_tool, None
    from .. import tools

    if text not in tools.names():
        raise FleetError(f"{text!r} is neither BPF C nor a tool of bpfnb.tools."
                         + did_you_mean(text, tools.names()) + f" Tools: {', '.join(tools.names())}.")
    return None, text


def _check_program_options(options: dict) -> None:
    unknown = [k for k in options if k not in PROGRAM_OPTIONS]
    if unknown:
        raise FleetError(f"unknown option {unknown[0]!r} for a BPF C capture."
                         + did_you_mean(unknown[0], PROGRAM_OPTIONS)
                         + f" Options: {', '.join(PROGRAM_OPTIONS)}.")


def _choose_workers(client, workers) -> list[str]:
    known = sorted(client.scheduler_info(n_workers=-1)["workers"]) if _takes_n_workers(client) \
        else sorted(client.scheduler_info()["workers"])
    if not known:
        raise FleetError("the Dask cluster has no workers; start some (dask worker SCHEDULER) and retry")
    if workers is None:
        return known
    if isinstance(workers, (str, int)):
        workers = [workers]
    labels = None
    chosen = []
    for w in workers:
        if isinstance(w, int):
            if not 0 <= w < len(known):
                raise FleetError(f"worker index {w} out of range: the cluster has {len(known)} workers")
            chosen.append(known[w])
        elif w in known or f"tcp://{w}" in known:
            chosen.append(w if w in known else f"tcp://{w}")
        else:
            labels = labels or {v: k for k, v in host_labels(client, known).items()}
            if w not in labels:
                raise FleetError(f"no worker {w!r}." + did_you_mean(w, list(labels) + known)
                                 + f" Workers: {', '.join(labels)}.")
            chosen.append(labels[w])
    return list(dict.fromkeys(chosen))


def _takes_n_workers(client) -> bool:
    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):
        return False


def host_labels(client, addresses: list[str]) -> dict[str, str]:
    """{worker address: host label}: the host name, with the address where hosts repeat."""
    names = client.run(socket.gethostname, workers=list(addresses))
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    return {addr: (names[addr] if counts[names[addr]] == 1
                   else f"{names[addr]}@{addr.split('://', 1)[-1]}") for addr in addresses}


def _overrides(worker_options, addresses, labels) -> dict:
    out = {}
    by_label = {v: k for k, v in labels.items()}
    for key, opts in (worker_options or {}).items():
        if isinstance(key, int) and 0 <= key < len(addresses):
            addr = addresses[key]
        elif key in labels:
            addr = key
        elif f"tcp://{key}" in labels:
            addr = f"tcp://{key}"
        elif key in by_label:
            addr = by_label[key]
        else:
            raise FleetError(f"worker_options names {key!r}, which is not a chosen worker; use an "
                             f"address, a host label or an index (workers: {', '.join(labels.values())})")
        if not isinstance(opts, dict):
            raise FleetError(f"worker_options[{key!r}] must be a dict of options, not {type(opts).__name__}")
        out[addr] = dict(opts)
    return out


# -- worker side --------------------------------------------------------------------------
def _worker_main(job: Job) -> dict:
    """Runs on one worker: attach, report, wait for the start, capture; never raises."""
    from distributed import Queue, get_worker

    address = get_worker().address
    label = job.labels.get(address, address)
    options = {**job.options, **job.overrides.get(address, {})}
    report = _report(address, label)
    queue = Queue(job.ready_queue)
    state = {"reported": False}

    def reached_start(ok: bool = True) -> None:
        if not state["reported"]:
            state["reported"] = True
            report["attached_wall"] = time.time()
            queue.put({"address": address, "ok": ok, "error": report["error"]})

    trace = None
    try:
        if job.tool is not None:
            trace = _run_tool(job, options, reached_start, report)
        else:
            trace = _run_program(job, options, reached_start, report, label)
        report["ok"] = True
    except BaseException as err:  # noqa: BLE001 - every failure is reported, never raised
        report["error"] = _error_dict(err)
    finally:
        reached_start(ok=report["error"] is None)
    return {"report": report, "trace": trace}


def _report(address: str, label: str, error: dict | None = None) -> dict:
    return {"address": address, "host": label, "hostname": socket.gethostname() if error is None else None,
            "kernel": platform.release() if error is None else None, "ok": False, "error": error}


def _error_dict(err: BaseException) -> dict:
    return {"type": type(err).__name__, "message": str(err) or type(err).__name__,
            "bpfnb_error": isinstance(err, BpfnbError)}


def _wait_for_go(job: Job, report: dict, poll=None) -> None:
    """Block until the client's start signal, polling buffers meanwhile."""
    from distributed import Event

    go = Event(job.go_event)
    began = time.monotonic()
    while not go.wait(timeout=0.05):
        if poll is not None:
            poll(0)
        if time.monotonic() - began > job.start_timeout:
            raise FleetError(f"no start signal from the client within {job.start_timeout:g} s; "
                             "was the client interrupted?")
    report["go_wall"] = time.time()
    report["waited_s"] = round(time.monotonic() - began, 6)


def _stop_checker(job: Job):
    from distributed import Event

    stop = Event(job.stop_event)
    last = [0.0]

    def should_stop() -> bool:
        now = time.monotonic()
        if now - last[0] < STOP_CHECK_S:
            return False
        last[0] = now
        return stop.is_set()

    return should_stop


def _run_program(job: Job, options: dict, reached_start, report: dict, label: str) -> Trace:
    from pathlib import Path

    from ..capture import DEFAULT_EVENT_LIMIT, Run
    from ..program import Program

    opts = dict(options)
    spill_dir, memory_limit = opts.pop("spill_dir", None), opts.pop("memory_limit", None)
    run_opts = {k: opts.pop(k) for k in ("event_limit", "buffer_pages", "per_cpu", "interval",
                                         "hist_interval") if k in opts}
    run_opts.setdefault("event_limit", DEFAULT_EVENT_LIMIT)
    with Program(job.source, **opts) as program:
        run = Run(program, None, should_stop=_stop_checker(job), **run_opts)
        spill = None
        if spill_dir is not None:
            from ..spill import DEFAULT_MEMORY_LIMIT, Spill, _slug

            spill = Spill(Path(spill_dir) / _slug(label), memory_limit or DEFAULT_MEMORY_LIMIT, host=label)
        with run:
            if spill is not None:
                spill.watch(run.sinks)
            reached_start()
            _wait_for_go(job, report, poll=run.poll)
            # the duration counts from the common start, not from this worker's attach
            run.duration = None if job.duration is None else run.elapsed() + job.duration
            if run.wait() == "stop button":  # Run's name for should_stop; here it is FleetRun.stop()
                run.stopped_by = "fleet stop"
        if spill is not None:
            spill.flush(run.sinks)
        trace = run.snapshot()
        if spill is not None:
            spill.finish(trace)
    return trace


def _run_tool(job: Job, options: dict, reached_start, report: dict) -> Trace:
    from .. import tools

    fn = getattr(tools, job.tool)

    def on_attach():
        reached_start()
        _wait_for_go(job, report)

    if "on_attach" in inspect.signature(fn).parameters:
        return fn(duration=job.duration, on_attach=on_attach, **options)
    on_attach()  # a tool without the hook: start together, attach after the signal
    return fn(duration=job.duration, **options)


# -- merging -------------------------------------------------------------------------------
def merge(outcomes: list[dict], fleet: dict | None = None) -> Trace:
    """One Trace from per-host outcomes ({"report", "trace"}): frames get a `host` column."""
    hosts, parts, lost = {}, {}, {}
    base_meta = None
    for outcome in outcomes:
        report, trace = dict(outcome["report"]), outcome["trace"]
        label = report["host"]
        if trace is not None:
            base_meta = base_meta if base_meta is not None else trace.meta
            report.update(_host_facts(trace))
            for name, n in trace.lost.items():
                lost[name] = lost.get(name, 0) + n
            for kind, name, frame in trace.items():
                parts.setdefault((kind, name), []).append(_with_host(frame, label))
        hosts[label] = report
    merged = Trace(lost=lost, meta={k: v for k, v in (base_meta or {}).items() if k not in _HOST_META})
    for (kind, name), frames in parts.items():
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        frame.attrs = dict(frames[0].attrs)
        merged.add(kind, name, frame)
    failed = [h for h, r in hosts.items() if r.get("error")]
    merged.meta["hosts"] = hosts
    merged.meta["fleet"] = {**(fleet or {}), "hosts": list(hosts), "failed": failed,
                            "ok": len(failed) < len(hosts)}
    return merged


def _with_host(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    out = frame.copy(deep=False)
    if HOST in out.columns:  # a tool's own host column: keep it under another name
        out = out.rename(columns={HOST: f"{HOST}_reported"})
    out.insert(0, HOST, pd.Series([label] * len(out), index=out.index, dtype=object))
    out.attrs = dict(frame.attrs)
    return out


def _host_facts(trace: Trace) -> dict:
    meta = trace.meta
    tool = meta.get("tool") or {}
    facts = {k: meta.get(k) for k in _HOST_META if k in meta and k != "host"}
    facts["hostname"] = meta.get("host")
    facts["lost"] = dict(trace.lost)
    facts["attach"] = tool.get("attach") or meta.get("probes") or []
    facts["rows"] = {f"{kind}:{name}": int(len(frame)) for kind, name, frame in trace.items()}
    return facts


def _jsonable(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def summary(trace: Trace) -> pd.DataFrame:
    """One row per host: ok, rows per output, lost events, how it stopped, the error if any."""
    rows = []
    for host, info in (trace.meta.get("hosts") or {}).items():
        error = info.get("error") or {}
        rows.append({HOST: host, "ok": bool(info.get("ok")), "kernel": info.get("kernel"),
                     "rows": sum((info.get("rows") or {}).values()),
                     "lost": sum((info.get("lost") or {}).values()), "stopped_by": info.get("stopped_by"),
                     "error": f"{error['type']}: {error['message']}" if error else ""})
    return pd.DataFrame(rows, columns=[HOST, "ok", "kernel", "rows", "lost", "stopped_by", "error"])


def wall_time(trace: Trace, frame: pd.DataFrame, ts: str = "ts") -> pd.Series:
    """bpf_ktime_get_ns() values of a fleet frame -> wall-clock datetimes, per host's own clock."""
    from ..frames.time import wall_time as convert

    out = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
    for host, part in frame.groupby(HOST, sort=False):
        offset = (trace.meta.get("hosts", {}).get(host) or {}).get("monotonic_to_wall_ns")
        if offset is None:
            raise FleetError(f"host {host!r} has no clock offset in meta['hosts']; it did not capture")
        out.loc[part.index] = convert(part[ts], offset).to_numpy()
    return out

