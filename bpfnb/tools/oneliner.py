"""Probe specs of the one-liner tools (trace, argdist), parsed without a kernel.

trace (bcc's trace syntax):

    PROBE [(FILTER)] ["FORMAT"[, ARG, ...]]
    t:syscalls:sys_enter_read (args->count > 20000) "read %d bytes", args->count
    r:c:malloc (retval == 0) "malloc failed"

argdist (bcc's argdist syntax):

    PROBE(SIGNATURE)[:TYPE[,TYPE...]:EXPR[,EXPR...][:FILTER]][#LABEL]
    t:syscalls:sys_enter_read():u64:args->count
    p:c:malloc(size_t size):size_t:size:size > 16#allocation sizes
    r:c:getaddrinfo():u64:$latency

PROBE is t:CATEGORY:EVENT (tracepoint), p:LIB:FUNC / r:LIB:FUNC (uprobe /
uretprobe; with an empty LIB, p::FUNC / r::FUNC are kprobes), or the long
forms tracepoint:, uprobe:, uretprobe:, kprobe:, kretprobe:.

Expressions are C, with these names: args->FIELD (tracepoints), arg1..arg6
and the signature's parameter names (entry probes), retval / $retval
(return probes), $latency (argdist return probes, ns since entry), $pid /
$tgid (process id), $tid (thread id), $uid, $cpu, $comm (a string).

Syntax errors raise OnelinerSyntaxError, whose message repeats the spec
with a caret under the offending position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import BpfnbError


class OnelinerSyntaxError(BpfnbError, ValueError):
    """A trace/argdist probe spec does not parse; the message points at the position."""

    def __init__(self, message: str, spec: str, pos: int):
        self.spec, self.pos, self.reason = spec, pos, message
        caret = " " * max(0, min(pos, len(spec))) + "^"
        super().__init__(f"{message}\n    {spec}\n    {caret}")


PROBE_KINDS = {
    "t": "tracepoint", "tracepoint": "tracepoint",
    "p": "probe", "r": "retprobe",
    "uprobe": "uprobe", "uretprobe": "uretprobe", "u": "usdt", "usdt": "usdt",
    "kprobe": "kprobe", "kretprobe": "kretprobe",
}
RETURN_KINDS = ("uretprobe", "kretprobe")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FORMAT = re.compile(r"%(?:%|(?P<flags>[-+ #0]*)(?P<width>\d*)(?:\.(?P<prec>\d+))?"
                     r"(?P<length>hh|h|ll|l|z|j|t)?(?P<conv>[a-zA-Z]))")
NUMERIC_CONVERSIONS = {"d": "s64", "i": "s64", "u": "u64", "x": "u64", "X": "u64", "o": "u64",
                       "c": "s64", "p": "u64"}
INT_TYPES = {
    "u8": "u8", "u16": "u16", "u32": "u32", "u64": "u64",
    "s8": "s8", "s16": "s16", "s32": "s32", "s64": "s64",
    "int": "s32", "unsigned int": "u32", "unsigned": "u32", "long": "s64", "unsigned long": "u64",
    "long long": "s64", "unsigned long long": "u64", "size_t": "u64", "ssize_t": "s64",
    "short": "s16", "unsigned short": "u16", "char": "s8", "unsigned char": "u8", "bool": "u8",
    "pid_t": "s32", "uid_t": "u32", "loff_t": "s64", "off_t": "s64",
}
STRING_TYPES = ("char*", "const char*", "char *", "const char *")


@dataclass(frozen=True)
class Probe:
    """Where a one-liner attaches. kind: tracepoint, uprobe, uretprobe, kprobe, kretprobe."""

    kind: str
    target: tuple[str, ...]      # (category, event) | (library, function) | (function,)
    text: str

    @property
    def is_return(self) -> bool:
        return self.kind in RETURN_KINDS

    @property
    def label(self) -> str:
        return f"{self.kind}:{':'.join(self.target)}"


@dataclass(frozen=True)
class TraceSpec:
    probe: Probe
    filter: str | None
    format: str | None
    args: tuple[str, ...]
    conversions: tuple[str, ...]       # one per arg: the printf conversion ("d", "s", ...)
    text: str


@dataclass(frozen=True)
class ArgdistSpec:
    probe: Probe
    params: tuple[tuple[str, str], ...]   # (C type, name) from the signature
    types: tuple[str, ...]
    exprs: tuple[str, ...]
    filter: str | None
    label: str | None
    text: str = field(default="")


# -- scanning helpers -------------------------------------------------------------
def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _match_paren(text: str, i: int, spec: str, offset: int = 0) -> int:
    """Index just past the ')' matching the '(' at i (quotes respected)."""
    depth, j, quote = 0, i, None
    while j < len(text):
        c = text[j]
        if quote:
            if c == "\\":
                j += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    raise OnelinerSyntaxError("unbalanced '(': no matching ')'", spec, offset + i)


def split_top(text: str, sep: str, spec: str, offset: int) -> list[tuple[str, int]]:
    """Split at `sep` outside parentheses, brackets and quotes -> [(part, start)]."""
    parts, opened, quote, start, j = [], [], None, 0, 0
    while j < len(text):
        c = text[j]
        if quote:
            if c == "\\":
                j += 1
            elif c == quote[0]:
                quote = None
        elif c in "\"'":
            quote = (c, j)
        elif c in "([":
            opened.append(j)
        elif c in ")]":
            if not opened:
                raise OnelinerSyntaxError(f"unexpected '{c}'", spec, offset + j)
            opened.pop()
        elif c == sep and not opened:
            parts.append((text[start:j], offset + start))
            start = j + 1
        j += 1
    if quote:
        raise OnelinerSyntaxError("unterminated string literal", spec, offset + quote[1])
    if opened:
        raise OnelinerSyntaxError("unbalanced '(': no matching ')'", spec, offset + opened[-1])
    parts.append((text[start:], offset + start))
    return parts


def parse_probe(spec: str, stop: str) -> tuple[Probe, int]:
    """Parse the probe at the start of spec; it ends before any char in `stop`
    (or whitespace). Returns the Probe and the index after it."""
    i = _skip_ws(spec, 0)
    head_end = spec.find(":", i)
    if head_end < 0:
        raise OnelinerSyntaxError(
            "a probe starts with its type: t:CATEGORY:EVENT, p:LIB:FUNCTION, r:LIB:FUNCTION "
            "(or p::FUNCTION for a kernel function)", spec, i)
    head = spec[i:head_end]
    kind = PROBE_KINDS.get(head.lower())
    if kind is None:
        raise OnelinerSyntaxError(
            f"unknown probe type {head!r}; use t (tracepoint), p (entry), r (return), "
            "or tracepoint/uprobe/uretprobe/kprobe/kretprobe", spec, i)
    j = head_end + 1
    first_word = (spec[j:].split() or [""])[0]
    if kind in ("kprobe", "kretprobe") and ":" not in first_word:
        where, name_pos = "", j                          # kprobe:FUNC
    else:
        colon = spec.find(":", j)
        bad = [k for k in range(j, colon if colon >= 0 else len(spec)) if spec[k].isspace() or spec[k] in stop]
        if colon < 0 or bad:
            example = {"tracepoint": "t:syscalls:sys_enter_read", "usdt": "u:/path/to/binary:probe"}.get(
                kind, "p:c:malloc")
            raise OnelinerSyntaxError(f"a {head} probe has two parts after the type, e.g. {example}",
                                      spec, bad[0] if bad else len(spec))
        where, name_pos = spec[j:colon], colon + 1
    m = _IDENT.match(spec, name_pos)
    if not m:
        raise OnelinerSyntaxError("expected a function or event name", spec, name_pos)
    name, end = m.group(0), m.end()
    if kind == "usdt":
        raise OnelinerSyntaxError(
            "USDT probes (u:) are not supported by the one-liner tools; use bpfnb.capture with the "
            "attach spec usdt:PATH:PROBE=fn", spec, i)
    if kind == "tracepoint":
        if not _IDENT.fullmatch(where):
            raise OnelinerSyntaxError(f"{where!r} is not a tracepoint category", spec, j)
        return Probe("tracepoint", (where, name), spec[i:end]), end
    if kind in ("probe", "retprobe"):
        ret = kind == "retprobe"
        if where == "":
            kind = "kretprobe" if ret else "kprobe"
        else:
            kind = "uretprobe" if ret else "uprobe"
    if kind in ("kprobe", "kretprobe"):
        return Probe(kind, (name,), spec[i:end]), end
    if where == "":
        raise OnelinerSyntaxError("a uprobe needs a library or program, e.g. p:c:malloc", spec, j)
    return Probe(kind, (where, name), spec[i:end]), end


# -- trace ----------------------------------------------------------------------------
def parse_trace(spec: str) -> TraceSpec:
    """PROBE [(FILTER)] ["FORMAT"[, ARG...]] -> TraceSpec."""
    probe, i = parse_probe(spec, stop='("')
    i = _skip_ws(spec, i)
    filt = None
    if i < len(spec) and spec[i] == "(":
        end = _match_paren(spec, i, spec)
        filt = spec[i + 1:end - 1].strip()
        if not filt:
            raise OnelinerSyntaxError("empty filter '()'; remove it or write a condition", spec, i)
        i = _skip_ws(spec, end)
    fmt, args, conversions = None, (), ()
    if i < len(spec) and spec[i] == '"':
        fmt_start = i
        j = i + 1
        while j < len(spec) and spec[j] != '"':
            j += 2 if spec[j] == "\\" else 1
        if j >= len(spec):
            raise OnelinerSyntaxError('unterminated format string: add the closing "', spec, len(spec))
        fmt = bytes(spec[i + 1:j], "utf-8").decode("unicode_escape")
        i = _skip_ws(spec, j + 1)
        if i < len(spec):
            if spec[i] != ",":
                raise OnelinerSyntaxError("expected ',' and the format's arguments after the format string",
                                          spec, i)
            pieces = [(t, pos + len(t) - len(t.lstrip())) for t, pos in split_top(spec[i + 1:], ",", spec, i + 1)]
            for text, pos in pieces:
                if not text.strip():
                    raise OnelinerSyntaxError("empty argument", spec, pos)
            args = tuple(t.strip() for t, _ in pieces)
            i = len(spec)
        conversions = _conversions(fmt, spec, fmt_start + 1)
        if len(conversions) != len(args):
            where = fmt_start if len(conversions) > len(args) else pieces[len(conversions)][1]
            raise OnelinerSyntaxError(
                f"the format has {len(conversions)} conversion(s) but {len(args)} argument(s) follow",
                spec, where)
    if i < len(spec):
        raise OnelinerSyntaxError('expected a (filter), a "format string" or the end of the probe',
                                  spec, i)
    return TraceSpec(probe, filt, fmt, args, conversions, spec)


def _conversions(fmt: str, spec: str, offset: int) -> tuple[str, ...]:
    convs = []
    for m in _FORMAT.finditer(fmt):
        if m.group(0) == "%%":
            continue
        conv = m.group("conv")
        if conv != "s" and conv not in NUMERIC_CONVERSIONS:
            raise OnelinerSyntaxError(
                f"unsupported conversion %{conv}; use %d %i %u %x %X %o %c %p or %s",
                spec, offset + m.start())
        convs.append(conv)
    return tuple(convs)


def python_format(fmt: str) -> str:
    """A C printf format -> the equivalent Python %-format (length modifiers dropped)."""
    def repl(m):
        if m.group(0) == "%%":
            return "%%"
        conv = {"u": "d", "i": "d", "p": "x"}.get(m.group("conv"), m.group("conv"))
        prefix = "0x" if m.group("conv") == "p" else ""
        prec = f".{m.group('prec')}" if m.group("prec") else ""
        return f"{prefix}%{m.group('flags')}{m.group('width')}{prec}{conv}"

    return _FORMAT.sub(repl, fmt)


# -- argdist --------------------------------------------------------------------------
def parse_argdist(spec: str) -> ArgdistSpec:
    """PROBE(SIGNATURE)[:TYPES:EXPRS[:FILTER]][#LABEL] -> ArgdistSpec."""
    body, label = spec, None
    hashes = [pos for _, pos in split_top(spec, "#", spec, 0)[1:]]
    if hashes:
        cut = hashes[-1] - 1
        body, label = spec[:cut], spec[cut + 1:].strip() or None
    probe, i = parse_probe(body, stop="(")
    if i >= len(body) or body[i] != "(":
        raise OnelinerSyntaxError("expected '(' and the function signature (may be empty: '()')",
                                  spec, i)
    end = _match_paren(body, i, spec)
    params = _signature(body[i + 1:end - 1], spec, i + 1)
    if probe.kind == "tracepoint" and params:
        raise OnelinerSyntaxError("tracepoints take no signature: write '()' and use args->FIELD",
                                  spec, i + 1)
    types, exprs, filt = (), (), None
    rest = body[end:]
    if rest.strip():
        if not rest.startswith(":"):
            raise OnelinerSyntaxError("expected ':' then the value types", spec, end)
        parts = split_top(rest[1:], ":", spec, end + 1)
        if len(parts) < 2:
            raise OnelinerSyntaxError("expected TYPE:EXPRESSION after the signature, e.g. :u64:args->count",
                                      spec, len(body))
        if len(parts) > 3:
            raise OnelinerSyntaxError("too many ':' parts; the form is PROBE(SIG):TYPES:EXPRS[:FILTER]",
                                      spec, parts[3][1] - 1)
        type_parts = split_top(parts[0][0], ",", spec, parts[0][1])
        expr_parts = split_top(parts[1][0], ",", spec, parts[1][1])
        for text, pos in type_parts:
            if _normal_type(text) is None:
                raise OnelinerSyntaxError(
                    f"unknown type {text.strip()!r}; use u8..u64, s8..s64, int, long, size_t, char*, ...",
                    spec, pos)
        for text, pos in expr_parts:
            if not text.strip():
                raise OnelinerSyntaxError("empty expression", spec, pos)
        if len(type_parts) != len(expr_parts):
            raise OnelinerSyntaxError(
                f"{len(type_parts)} type(s) but {len(expr_parts)} expression(s); give one type per expression",
                spec, parts[1][1])
        types = tuple(_normal_type(t) for t, _ in type_parts)
        exprs = tuple(t.strip() for t, _ in expr_parts)
        if len(parts) == 3:
            filt = parts[2][0].strip()
            if not filt:
                raise OnelinerSyntaxError("empty filter after ':'", spec, parts[2][1])
    return ArgdistSpec(probe, params, types, exprs, filt, label, spec)


def _normal_type(text: str) -> str | None:
    t = " ".join(text.replace("*", " * ").split()).replace(" *", "*")
    if t in ("char*", "const char*"):
        return "char*"
    return t if t in INT_TYPES else None


def _signature(text: str, spec: str, offset: int) -> tuple[tuple[str, str], ...]:
    if not text.strip():
        return ()
    params = []
    for part, pos in split_top(text, ",", spec, offset):
        m = re.fullmatch(r"\s*(.*?[\s*])([A-Za-z_]\w*)\s*", part)
        if not m or not m.group(1).strip():
            raise OnelinerSyntaxError("a parameter is 'TYPE NAME', e.g. 'size_t size'", spec, pos)
        params.append((m.group(1).strip(), m.group(2)))
    if len(params) > 6:
        raise OnelinerSyntaxError("at most 6 parameters can be read from registers", spec, offset)
    return tuple(params)


# -- expression translation --------------------------------------------------------------
_SPECIALS = {
    "$pid": "(u32)(bpf_get_current_pid_tgid() >> 32)",
    "$tgid": "(u32)(bpf_get_current_pid_tgid() >> 32)",
    "$tid": "(u32)bpf_get_current_pid_tgid()",
    "$uid": "(u32)bpf_get_current_uid_gid()",
    "$cpu": "bpf_get_smp_processor_id()",
}


def translate(expr: str, probe: Probe, params=(), spec: str = "", offset: int = 0) -> str:
    """A one-liner C expression -> C for the probe function (ctx is the context)."""
    out, i = [], 0
    names = {name: n + 1 for n, (_, name) in enumerate(params)}
    for m in re.finditer(r"\$?[A-Za-z_]\w*|\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'", expr):
        tok = m.group(0)
        out.append(expr[i:m.start()])
        i = m.end()
        before = expr[:m.start()].rstrip()
        if tok[0] in "\"'" or before.endswith("->") or before.endswith("."):
            out.append(tok)
            continue
        out.append(_token(tok, probe, names, spec, offset + m.start()))
    out.append(expr[i:])
    return "".join(out)


def _token(tok: str, probe: Probe, names: dict, spec: str, pos: int) -> str:
    low = tok.lower()
    if low in _SPECIALS:
        return _SPECIALS[low]
    if tok in ("retval", "$retval"):
        if not probe.is_return:
            raise OnelinerSyntaxError(f"{tok} exists only in return probes (r:...)", spec, pos)
        return "PT_REGS_RC(ctx)"
    if tok == "$latency":
        if probe.kind != "uretprobe" and probe.kind != "kretprobe":
            raise OnelinerSyntaxError("$latency exists only in return probes (r:...)", spec, pos)
        return "(bpf_ktime_get_ns() - entry_ts)"
    if tok == "$comm":
        raise OnelinerSyntaxError("$comm is a string: use it as a char* value or %s argument", spec, pos)
    if tok.startswith("$"):
        raise OnelinerSyntaxError(
            f"unknown special name {tok}; known: $pid $tgid $tid $uid $cpu $comm $retval $latency", spec, pos)
    m = re.fullmatch(r"arg([1-6])", tok)
    if m or tok in names:
        if probe.kind == "tracepoint":
            raise OnelinerSyntaxError(f"{tok}: tracepoint fields are args->FIELD", spec, pos)
        if probe.is_return:
            raise OnelinerSyntaxError(f"{tok}: arguments are not available in return probes", spec, pos)
        return f"PT_REGS_PARM{m.group(1) if m else names[tok]}(ctx)"
    if tok == "args" and probe.kind != "tracepoint":
        raise OnelinerSyntaxError("args->FIELD exists only for tracepoints; use arg1..arg6", spec, pos)
    return tok


def column_name(expr: str, used: set, fallback: str,
                reserved=("ts", "time", "pid", "tid", "comm", "message", "probe")) -> str:
    """A column name for an expression: args->count -> count, arg1 -> arg1, $pid -> pid
    (with a suffix when taken or reserved)."""
    m = re.fullmatch(r"\s*(?:args\s*->\s*)?\$?([A-Za-z_]\w*)\s*", expr)
    name = m.group(1) if m else fallback
    if name in reserved:
        name = f"{name}_value"
    if name in used:
        name = f"{name}_{len(used) + 1}"
    used.add(name)
    return name
