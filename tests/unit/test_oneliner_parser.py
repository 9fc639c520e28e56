"""The trace/argdist probe-spec parser, without a kernel."""

from __future__ import annotations

import pytest

from bpfnb.errors import BpfnbError
from bpfnb.tools.oneliner import (
    OnelinerSyntaxError,
    column_name,
    parse_argdist,
    parse_trace,
    python_format,
    translate,
)


def caret_column(error: OnelinerSyntaxError) -> int:
    spec_line, caret_line = str(error).splitlines()[-2:]
    assert spec_line.strip() == error.spec.strip()
    return caret_line.index("^") - (len(spec_line) - len(spec_line.lstrip()))


# -- trace -------------------------------------------------------------------------------
def test_trace_spec_from_the_issue():
    s = parse_trace('t:syscalls:sys_enter_read (args->count > 20000) "read %d bytes", args->count')
    assert (s.probe.kind, s.probe.target) == ("tracepoint", ("syscalls", "sys_enter_read"))
    assert s.filter == "args->count > 20000"
    assert s.format == "read %d bytes"
    assert s.args == ("args->count",) and s.conversions == ("d",)


@pytest.mark.parametrize("text, kind, target", [
    ("p:c:malloc", "uprobe", ("c", "malloc")),
    ("r:c:malloc", "uretprobe", ("c", "malloc")),
    ("p:/usr/lib/libfoo.so.1:foo_bar", "uprobe", ("/usr/lib/libfoo.so.1", "foo_bar")),
    ("p::vfs_read", "kprobe", ("vfs_read",)),
    ("r::vfs_read", "kretprobe", ("vfs_read",)),
    ("kprobe:vfs_read", "kprobe", ("vfs_read",)),
    ("uretprobe:c:getaddrinfo", "uretprobe", ("c", "getaddrinfo")),
    ("tracepoint:sched:sched_switch", "tracepoint", ("sched", "sched_switch")),
])
def test_probe_kinds(text, kind, target):
    probe = parse_trace(text).probe
    assert (probe.kind, probe.target, probe.text) == (kind, target, text)


def test_filter_with_nested_parens_and_strings():
    s = parse_trace('p:c:write ((arg3 & 0xff) > (1 << 4)) "w %d, \\"q\\" %s", arg3, $comm')
    assert s.filter == "(arg3 & 0xff) > (1 << 4)"
    assert s.format == 'w %d, "q" %s' and s.conversions == ("d", "s")
    assert s.args == ("arg3", "$comm")


def test_argument_commas_inside_calls_do_not_split():
    s = parse_trace('p:c:f "%d %d", max(arg1, arg2), arg3')
    assert s.args == ("max(arg1, arg2)", "arg3")


def test_probe_without_format():
    s = parse_trace("t:sched:sched_switch")
    assert s.format is None and s.args == () and s.filter is None


@pytest.mark.parametrize("spec, column, reason", [
    ("x:syscalls:sys_enter_read", 0, "unknown probe type"),
    ("syscalls", 0, "starts with its type"),
    ("t:syscalls:sys_enter_read (args->count > 2", 26, "unbalanced"),
    ('t:syscalls:sys_enter_read "%d %d", args->count', 26, "2 conversion(s) but 1"),
    ('t:syscalls:sys_enter_read "%d", args->count, args->fd', 45, "1 conversion(s) but 2"),
    ('t:syscalls:sys_enter_read "%f", args->count', 27, "unsupported conversion %f"),
    ('t:syscalls:sys_enter_read "read', 31, "unterminated format"),
    ("t:syscalls:sys_enter_read junk", 26, "expected a (filter)"),
    ('t:syscalls:sys_enter_read "x" args->count', 30, "expected ','"),
    ("t:syscalls:sys_enter_read ()", 26, "empty filter"),
    ("p:c:9malloc", 4, "expected a function"),
    ("u:/bin/python:function__entry", 0, "USDT"),
    ('t:syscalls:sys_enter_read "%d",  ', 33, "empty argument"),
])
def test_trace_syntax_errors_point_at_the_problem(spec, column, reason):
    with pytest.raises(OnelinerSyntaxError) as info:
        parse_trace(spec)
    assert reason in str(info.value)
    assert caret_column(info.value) == column
    assert isinstance(info.value, BpfnbError) and isinstance(info.value, ValueError)


def test_python_format_translates_c_conversions():
    assert python_format("%d %lu %llx %5.2s %p %%") == "%d %d %x %5.2s 0x%x %%"
    assert python_format("%-8ld|%03u") == "%-8d|%03d"


# -- argdist -----------------------------------------------------------------------------
def test_argdist_spec_from_the_issue():
    s = parse_argdist("t:syscalls:sys_enter_read():u64:args->count")
    assert s.probe.target == ("syscalls", "sys_enter_read")
    assert (s.params, s.types, s.exprs, s.filter, s.label) == ((), ("u64",), ("args->count",), None, None)


def test_argdist_signature_filter_label():
    s = parse_argdist("p:c:malloc(size_t size, int flags):size_t,char*:size,$comm:size > 16 && flags#big mallocs")
    assert s.params == (("size_t", "size"), ("int", "flags"))
    assert s.types == ("size_t", "char*") and s.exprs == ("size", "$comm")
    assert s.filter == "size > 16 && flags" and s.label == "big mallocs"


def test_argdist_count_only_and_pointer_types():
    assert parse_argdist("p:c:free()").exprs == ()
    assert parse_argdist("p:c:puts(const char *s):const char *:s").types == ("char*",)
    assert parse_argdist("p:c:f(unsigned long n):unsigned long:n").types == ("unsigned long",)


@pytest.mark.parametrize("spec, column, reason", [
    ("t:syscalls:sys_enter_read:u64:args->count", 25, "expected '('"),
    ("t:syscalls:sys_enter_read():u64", 31, "expected TYPE:EXPRESSION"),
    ("p:c:malloc(size_t size):float:size", 24, "unknown type 'float'"),
    ("p:c:malloc(size_t size):u64,u32:size", 32, "2 type(s) but 1 expression(s)"),
    ("p:c:malloc(size_t size):u64:size:size > 1:extra", 41, "too many ':'"),
    ("p:c:malloc(size):u64:size", 11, "TYPE NAME"),
    ("t:syscalls:sys_enter_read(int fd):u64:fd", 26, "tracepoints take no signature"),
    ("p:c:malloc(size_t size):u64:size:", 33, "empty filter"),
    ("p:c:malloc(size_t size", 10, "unbalanced"),
])
def test_argdist_syntax_errors_point_at_the_problem(spec, column, reason):
    with pytest.raises(OnelinerSyntaxError) as info:
        parse_argdist(spec)
    assert reason in str(info.value)
    assert caret_column(info.value) == column


# -- expressions -------------------------------------------------------------------------
def test_translate_names_per_probe_kind():
    up = parse_trace("p:c:malloc").probe
    ret = parse_trace("r:c:malloc").probe
    tp = parse_trace("t:syscalls:sys_enter_read").probe
    assert translate("arg1 * 2", up) == "PT_REGS_PARM1(ctx) * 2"
    assert translate("size + 1", up, (("size_t", "size"),)) == "PT_REGS_PARM1(ctx) + 1"
    assert translate("retval == 0", ret) == "PT_REGS_RC(ctx) == 0"
    assert translate("$retval", ret) == "PT_REGS_RC(ctx)"
    assert translate("args->count > $pid", tp) == "args->count > (u32)(bpf_get_current_pid_tgid() >> 32)"
    assert translate('x->arg1 + "arg1"', up) == 'x->arg1 + "arg1"'   # members and strings untouched


@pytest.mark.parametrize("expr, probe, reason", [
    ("retval", "p:c:malloc", "only in return probes"),
    ("arg1", "t:syscalls:sys_enter_read", "args->FIELD"),
    ("args->x", "p:c:malloc", "only for tracepoints"),
    ("arg1", "r:c:malloc", "not available in return probes"),
    ("$nope", "p:c:malloc", "unknown special name"),
    ("$latency", "p:c:malloc", "only in return probes"),
])
def test_translate_rejects_names_the_probe_lacks(expr, probe, reason):
    spec = f'{probe} "%d", {expr}'
    with pytest.raises(OnelinerSyntaxError, match=reason) as info:
        parse = parse_trace(spec)
        translate(parse.args[0], parse.probe, spec=spec, offset=spec.index(expr))
    assert caret_column(info.value) == spec.index(expr)


def test_column_names():
    used: set = set()
    assert column_name("args->count", used, "value1") == "count"
    assert column_name("arg1", used, "value2") == "arg1"
    assert column_name("arg1 * 2", used, "value3") == "value3"
    assert column_name("$pid", used, "value4") == "pid_value"
    assert column_name("args->count", used, "value5") == "count_5"
