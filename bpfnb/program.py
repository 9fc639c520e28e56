"""Program: compile BPF C with bcc, find its outputs, attach and detach probes.

    prog = Program(C_TEXT, defines={"TARGET": 42}, attach=["uprobe:c:malloc=on_malloc"])
    with prog.run(duration=5) as run:     # attach; detach on exit, always
        ...
        trace = run.snapshot()
    prog.close()                          # or use Program as a context manager

Compiling does not attach: bcc's own auto-attach of conventional names
(TRACEPOINT_PROBE, kprobe__fn, ...) is deferred to `attach()`, so a Program
can be inspected before anything runs in the kernel.
"""

from __future__ import annotations

import atexit
import ctypes as ct
import os
import re
import warnings
from dataclasses import dataclass, field

from . import probes as probes_mod
from . import system
from .cerrors import CELL_FILE, VERIFIER_HINT, captured_stderr, compile_message, verifier_message
from .errors import AttachError, BpfnbError, CompileError, VerifierError, did_you_mean
from .outputs import LOST_MAP, rewrite_output_calls

# bcc 0.26 warns on every str argument; bpfnb passes str on purpose
warnings.filterwarnings("ignore", message="not a bytes object", category=DeprecationWarning)

_HIST_DECL = re.compile(r"\bBPF_HISTOGRAM\s*\(\s*(\w+)\s*(?:,\s*([^,)]+?)\s*)?(?:,\s*(\d+)\s*)?\)")
_STACK_DECL = re.compile(r"\bBPF_STACK_TRACE(?:_BUILDID)?\s*\(\s*(\w+)")


@dataclass
class Outputs:
    """What a compiled program produces, by kind."""

    events: dict[str, str] = field(default_factory=dict)   # name -> "perf" | "ringbuf"
    maps: list[str] = field(default_factory=list)
    hists: dict[str, str] = field(default_factory=dict)    # name -> "log2" | "linear"
    stack_tables: list[str] = field(default_factory=list)


def _to_define(name: str, value) -> str:
    if not re.match(r"^[A-Za-z_]\w*$", str(name)):
        raise CompileError(f"define name {name!r} is not a C identifier")
    if value is None or value is True:
        return f"-D{name}"
    if isinstance(value, str) and not re.match(r"^-?\w+$", value) and not value.startswith('"'):
        return f"-D{name}={value}"
    return f"-D{name}={value}"


def hist_type_of(source: str, name: str) -> str:
    """log2 when the program buckets this histogram with bpf_log2*, else linear."""
    calls = re.finditer(rf"\b{re.escape(name)}\s*\.\s*(?:atomic_)?increment\s*\(\s*([^;]*?)\)\s*;", source)
    for call in calls:
        arg = call.group(1)
        if "log2" in arg:
            return "log2"
        var = re.match(r"\s*&?\s*(\w+)", arg)
        if var and re.search(rf"\b{re.escape(var.group(1))}\s*(?:\.\s*slot)?\s*=\s*bpf_log2", source):
            return "log2"
        if var and re.search(rf"\b{re.escape(var.group(1))}\s*=\s*\{{[^;]*\.\s*slot\s*=\s*bpf_log2", source):
            return "log2"  # designated initializer: struct k key = {.slot = bpf_log2l(x)}
    return "linear"


class Program:
    """A compiled BPF program and the probes it wants."""

    def __init__(
        self,
        source: str,
        defines: dict | None = None,
        attach=None,
        *,
        pid: int | None = None,
        cflags=(),
        hist_types: dict | None = None,
    ):
        self.source = source
        self.defines = dict(defines or {})
        self.pid = pid
        self.specs = probes_mod.parse_specs(attach)
        self.conventions = probes_mod.convention_probes(source)
        self.cflags = list(cflags)
        self.probes: list[str] = []       # labels of attached probes
        self.lost_slots: dict[str, int] = {}
        self.bpf = None
        self._hist_overrides = dict(hist_types or {})
        system.import_bcc()
        system.require_privileges()
        for spec in self.conventions + self.specs:
            probes_mod.check_available(spec)
        self._compile()
        self.outputs = self._discover()
        self._check_spec_functions()

    # -- compile ------------------------------------------------------------------
    def _compile(self) -> None:
        from bcc import BPF, USDT

        class _DeferredAttachBPF(BPF):
            """bcc's BPF, with its constructor's auto-attach deferred to attach()."""

            def _trace_autoload(self):
                if getattr(self, "_bpfnb_attach_now", False):
                    super()._trace_autoload()

        usdt_contexts = []
        for spec in self.specs:
            if spec.kind == "usdt":
                where, probe = spec.target
                ctx = USDT(pid=int(where)) if where.isdigit() else USDT(path=where, pid=self.pid)
                try:
                    ctx.enable_probe(probe=probe, fn_name=spec.fn)
                except Exception as exc:
                    raise AttachError(f"USDT probe {probe!r} in {where}: {exc}. List probes with "
                                      f"`tplist-bpfcc -l {where}`.") from None
                usdt_contexts.append(ctx)
        text, self.lost_slots = rewrite_output_calls(self.source)
        prelude = ""
        if self.lost_slots:
            prelude += f"BPF_PERCPU_ARRAY({LOST_MAP}, u64, {max(len(self.lost_slots), 1)});\n"
        text = f"{prelude}#line 1 \"{CELL_FILE}\"\n{text}"
        flags = [_to_define(k, v) for k, v in self.defines.items()]
        if self.pid is not None and "PID" not in self.defines:
            flags.append(f"-DPID={int(self.pid)}")
        flags += self.cflags
        with captured_stderr() as log:
            try:
                self.bpf = _DeferredAttachBPF(text=text, cflags=flags, usdt_contexts=usdt_contexts)
            except Exception as exc:
                failure = exc
            else:
                failure = None
        if failure is not None:
            raise CompileError(
                "the BPF program did not compile:\n" + compile_message(log.text, self.source, self.defines)
            ) from None
        atexit.unregister(self.bpf.cleanup)  # we clean up ourselves, always

    def _discover(self) -> Outputs:
        from bcc import PerfEventArray, RingBuf
        from bcc.libbcc import lib

        from .maps import SNAPSHOT_TYPES, STACK_TRACE

        _declare_table_listing(lib)
        out = Outputs()
        hist_names = {m.group(1) for m in _HIST_DECL.finditer(self.source)}
        stack_names = {m.group(1) for m in _STACK_DECL.finditer(self.source)}
        for i in range(lib.bpf_num_tables(self.bpf.module)):
            name = lib.bpf_table_name(self.bpf.module, i).decode()
            if name == LOST_MAP:
                continue
            ttype = lib.bpf_table_type_id(self.bpf.module, i)
            table = self.bpf[name]
            if isinstance(table, RingBuf):
                out.events[name] = "ringbuf"
            elif isinstance(table, PerfEventArray):
                out.events[name] = "perf"
            elif ttype == STACK_TRACE or name in stack_names:
                out.stack_tables.append(name)
            elif name in hist_names and ttype in SNAPSHOT_TYPES:
                out.hists[name] = self._hist_overrides.get(name) or hist_type_of(self.source, name)
            elif ttype in SNAPSHOT_TYPES:
                out.maps.append(name)
        return out

    def _check_spec_functions(self) -> None:
        from bcc.libbcc import lib

        functions = [lib.bpf_function_name(self.bpf.module, i).decode()
                     for i in range(lib.bpf_num_functions(self.bpf.module))]
        for spec in self.specs:
            if spec.kind != "usdt" and spec.fn not in functions:
                raise AttachError(
                    f"attach spec {spec.text or spec.label}: the program has no function {spec.fn!r}."
                    + did_you_mean(spec.fn, functions)
                )

    # -- attach / detach -------------------------------------------------------------
    def attach(self) -> None:
        """Attach every probe: conventional names first, then explicit specs."""
        if self.bpf is None:
            raise BpfnbError("this Program is closed; create a new one")
        failure = None  # (exception, spec): turned into a message once bcc's log is in
        try:
            with captured_stderr() as log:
                failure = self._attach_all()
        except BaseException:
            self.detach()
            raise
        if failure is not None:
            self.detach()
            raise self._load_error(*failure, log.text) from None

    def _attach_all(self):
        """Attach; (exception, spec) for the first bcc failure, None when all attached."""
        try:
            self.bpf._bpfnb_attach_now = True
            self.bpf._trace_autoload()
        except Exception as exc:
            return exc, None
        self.probes = [spec.label for spec in self.conventions]
        for spec in self.specs:
            try:
                self._attach_spec(spec)
            except BpfnbError:
                raise
            except Exception as exc:
                return exc, spec
            self.probes.append(spec.label)
        return None

    def _load_error(self, exc: Exception, spec, log: str) -> BpfnbError:
        text = str(exc)
        where = f" ({spec.text or spec.label})" if spec else ""
        if "Failed to load BPF program" in text:
            detail = verifier_message(log) if log.strip() else ""
            return VerifierError("\n".join(part for part in (f"{text}{where}", detail, VERIFIER_HINT) if part))
        return AttachError(f"could not attach{where}: {text}. {log.strip()[-500:]}".rstrip())

    def _attach_spec(self, spec) -> None:
        b, kind, fn = self.bpf, spec.kind, spec.fn
        pid = self.pid if self.pid is not None else -1
        if kind == "tracepoint":
            b.attach_tracepoint(tp=":".join(spec.target), fn_name=fn)
        elif kind == "raw_tracepoint":
            b.attach_raw_tracepoint(tp=spec.target[0], fn_name=fn)
        elif kind == "kprobe":
            b.attach_kprobe(event=spec.target[0], fn_name=fn)
        elif kind == "kretprobe":
            b.attach_kretprobe(event=spec.target[0], fn_name=fn)
        elif kind in ("uprobe", "uretprobe"):
            self._attach_uprobe(spec, pid)
        elif kind == "perf":
            ev_type, ev_config = probes_mod.PERF_EVENTS[spec.target[0]]
            b.attach_perf_event(ev_type=ev_type, ev_config=ev_config, fn_name=fn,
                                sample_freq=int(spec.target[1]), pid=pid)
        elif kind == "usdt":
            pass  # attached by bcc while compiling, from the USDT context

    def _attach_uprobe(self, spec, pid: int) -> None:
        from bcc import BPF

        lib_name, sym = spec.target
        path = BPF.find_library(lib_name) if "/" not in lib_name else lib_name.encode()
        if path is None and "/" not in lib_name:
            path = BPF.find_exe(lib_name)
        if path is None or not os.path.exists(path):
            raise AttachError(
                f"{spec.text or spec.label}: no library or program {lib_name!r} found. Give a path "
                "(uprobe:/usr/lib/x86_64-linux-gnu/libc.so.6:malloc=fn) or a library name like 'c'."
            )
        try:
            attach = self.bpf.attach_uprobe if spec.kind == "uprobe" else self.bpf.attach_uretprobe
            attach(name=path, sym=sym, fn_name=spec.fn, pid=pid)
        except Exception as exc:
            if "could not determine address" in str(exc):
                names = [n.decode(errors="replace") for n, _ in
                         BPF.get_user_functions_and_addresses(path, b".*")]
                raise AttachError(
                    f"{spec.text or spec.label}: no symbol {sym!r} in {path.decode() if isinstance(path, bytes) else path}."
                    + did_you_mean(sym, names) + " List its symbols with `nm -D` (or `nm` for programs)."
                ) from None
            raise

    def detach(self) -> None:
        """Detach every probe; maps stay readable until close()."""
        b = self.bpf
        if b is None:
            return
        with captured_stderr():
            for fds, detach_one in _attachments(b):
                for key in list(fds):
                    _quietly(detach_one, key)
            for ev_type, ev_config in list(b.open_perf_events):
                _quietly(b.detach_perf_event, ev_type, ev_config)
        self.probes = []

    def close(self) -> None:
        """Detach and free every kernel object (programs, maps, buffers)."""
        if self.bpf is None:
            return
        self.detach()
        with captured_stderr():
            _free_perf_buffers(self.bpf)
            _quietly(self.bpf.cleanup)
        self.bpf = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- running ------------------------------------------------------------------------
    def run(self, duration=None, **options):
        """Attach and return a Run (a context manager that detaches on exit)."""
        from .capture import Run

        return Run(self, duration=duration, **options)

    def lost_in_kernel(self) -> dict[str, int]:
        """Ring-buffer submissions that failed, counted by the program itself."""
        if not self.lost_slots or self.bpf is None:
            return {}
        table = self.bpf[LOST_MAP]
        counts = {}
        for name, slot in self.lost_slots.items():
            counts[name] = int(sum(table[ct.c_int(slot)]))
        return counts

    def meta(self) -> dict:
        return {
            "source": self.source,
            "defines": {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v))
                        for k, v in self.defines.items()},
            "probes": list(self.probes) or [s.label for s in self.conventions + self.specs],
            "pid": self.pid,
            "outputs": {
                "events": dict(self.outputs.events),
                "maps": list(self.outputs.maps),
                "hists": dict(self.outputs.hists),
                "stack_tables": list(self.outputs.stack_tables),
            },
        }


def _declare_table_listing(lib) -> None:
    """bcc's Python binding leaves these two undeclared (pointer results truncated)."""
    lib.bpf_num_tables.restype = ct.c_ulonglong
    lib.bpf_num_tables.argtypes = [ct.c_void_p]
    lib.bpf_table_name.restype = ct.c_char_p
    lib.bpf_table_name.argtypes = [ct.c_void_p, ct.c_ulonglong]


def _free_perf_buffers(b) -> None:
    """Free perf readers without bcc's PerfEventArray.__del__, which deletes
    array elements (not allowed for arrays: an ignored KeyError per CPU)."""
    from bcc import PerfEventArray
    from bcc.libbcc import lib

    for table in list(b.tables.values()):
        if not isinstance(table, PerfEventArray):
            continue
        for key in list(table._open_key_fds):
            reader = b.perf_buffers.pop((id(table), key), None)
            if reader:
                lib.perf_reader_free(reader)
                table._cbs.pop(key, None)
            else:
                lib.bpf_close_perf_event_fd(table._open_key_fds[key])
            del table._open_key_fds[key]


def _attachments(b) -> list:
    """bcc's tables of attached probes, each with the call that detaches one."""
    return [
        (b.kprobe_fds, b.detach_kprobe_event), (b.uprobe_fds, b.detach_uprobe_event),
        (b.tracepoint_fds, b.detach_tracepoint), (b.raw_tracepoint_fds, b.detach_raw_tracepoint),
        (b.kfunc_entry_fds, b.detach_kfunc), (b.kfunc_exit_fds, b.detach_kretfunc),
    ]


def probes_attached(b) -> bool:
    """Whether a bcc BPF object has any probe attached (its programs may be writing maps)."""
    return any(fds for fds, _ in _attachments(b)) or bool(b.open_perf_events)


def _quietly(fn, *args):
    try:
        fn(*args)
    except Exception:
        pass
