"""`bpfnb run NAME [options] --duration S --out DIR`: any tool from a shell.

Each tool's options come from its function's signature, so the command line,
the `%bpf_tool` magic and the Python API never drift apart:

    bpfnb run ext4slower --min-ms 1 --pid 1234 -d 10 --out slow.bpfnb
    bpfnb run biolatency --disks --milliseconds
    bpfnb run trace 't:syscalls:sys_enter_read (args->count > 20000) "read %d bytes", args->count'
    bpfnb run argdist 't:syscalls:sys_enter_read():u64:args->count' --no-histogram
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys

from ..errors import BpfnbError

HIDDEN = ("on_attach", "duration")
_TYPES = {"int": int, "float": float, "str": str}


class ToolUsageError(BpfnbError):
    """Options given to a tool on a command line or magic line do not parse."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # no SystemExit inside notebooks
        raise ToolUsageError(f"{self.prog}: {message}. See `{self.prog} --help`.")


def tool_parser(name: str, prog: str | None = None, *, duration_default: float = 5) -> argparse.ArgumentParser:
    """An argparse parser for tool `name`, built from its signature, with -d/--duration."""
    from . import get

    fn = get(name)
    parser = _Parser(prog=prog or f"bpfnb run {name}",
                     description=(inspect.getdoc(fn) or "").split("\n\n")[0],
                     epilog=_options_doc(fn), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-d", "--duration", type=float, default=duration_default,
                        help=f"seconds to trace (default {duration_default}; 0: until Ctrl-C)")
    for param in inspect.signature(fn).parameters.values():
        if param.name in HIDDEN:
            continue
        add_option(parser, param)
    return parser


def add_option(parser: argparse.ArgumentParser, param: inspect.Parameter) -> None:
    """One argparse argument for one tool parameter."""
    if param.kind is param.VAR_POSITIONAL:
        parser.add_argument(param.name, nargs="+", metavar=param.name.rstrip("s").upper())
        return
    if param.default is param.empty:
        parser.add_argument(param.name, metavar=param.name.upper())
        return
    flags = [f"--{param.name.replace('_', '-')}"] + ([f"--{param.name}"] if "_" in param.name else [])
    if param.name == "pid":
        flags.insert(0, "-p")
    if isinstance(param.default, bool):
        if param.default:
            parser.add_argument(f"--no-{param.name.replace('_', '-')}", dest=param.name,
                                action="store_false", help=f"turn off {param.name} (on by default)")
        else:
            parser.add_argument(*flags, dest=param.name, action="store_true")
        return
    kind = type(param.default) if param.default is not None else _annotated_type(param.annotation)
    parser.add_argument(*flags, dest=param.name, type=kind, default=param.default,
                        metavar=kind.__name__.upper(), help=f"default: {param.default}")


def _annotated_type(annotation) -> type:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    for word in re.findall(r"[A-Za-z_]+", text):
        if word in _TYPES:
            return _TYPES[word]
    return str


def _options_doc(fn) -> str:
    doc = inspect.getdoc(fn) or ""
    parts = doc.split("\n\n", 1)
    return parts[1] if len(parts) > 1 else ""


def parse_tool_args(name: str, argv, prog: str | None = None, duration_default: float = 5):
    """(positional args, keyword options, duration) for calling tool `name`."""
    from . import get

    ns = vars(tool_parser(name, prog, duration_default=duration_default).parse_args(list(argv)))
    duration = ns.pop("duration")
    args, kwargs = [], {}
    for param in inspect.signature(get(name)).parameters.values():
        if param.name not in ns:
            continue
        value = ns[param.name]
        if param.kind is param.VAR_POSITIONAL:
            args.extend(value)
        elif param.default is param.empty:
            args.append(value)
        else:
            kwargs[param.name] = value
    return args, kwargs, duration


def run_tool_cli(argv) -> int:
    """Entry for `bpfnb run NAME [options] [--duration S] [--out DIR]`; returns an exit code."""
    from . import get, names

    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: bpfnb run NAME [options] [-d SECONDS] [--out DIR]\n\ntools: " + ", ".join(names())
              + "\n\n`bpfnb run NAME --help` lists a tool's options.")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    out = None
    if "--out" in rest:
        at = rest.index("--out")
        if at + 1 >= len(rest):
            print("bpfnb run: --out needs a directory", file=sys.stderr)
            return 2
        out = rest[at + 1]
        del rest[at:at + 2]
    try:
        fn = get(name)
        args, kwargs, duration = parse_tool_args(name, rest)
        trace = fn(*args, duration=duration or None, **kwargs)
    except SystemExit as exc:   # --help
        return int(exc.code or 0)
    except BpfnbError as exc:
        print(f"bpfnb run {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    from ..display import trace_text

    print(trace_text(trace))
    tool = trace.meta.get("tool", {})
    print(f"{name}: attached to {', '.join(tool.get('attach', [])) or '?'}")
    if tool.get("note"):
        print(f"{name}: {tool['note']}")
    if out:
        print(f"saved to {trace.save(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool_cli(sys.argv[1:]))
