"""Ring-buffer call rewriting, histogram type detection, compile messages."""

from bpfnb.cerrors import CELL_FILE, compile_message, verifier_message
from bpfnb.outputs import LOST_MAP, rewrite_output_calls
from bpfnb.program import hist_type_of


def test_ringbuf_calls_rewritten_on_the_same_line():
    source = (
        "int f(void *ctx) {\n"
        "  events.ringbuf_output(&e, sizeof(e), 0);\n"
        "  struct ev *p = other.ringbuf_reserve(sizeof(*p));\n"
        "  if (events.ringbuf_output(&e, sizeof(f(1, (2))), 0) < 0) return 1;\n"
        "}\n"
    )
    text, slots = rewrite_output_calls(source)
    assert slots == {"events": 0, "other": 1}
    assert text.count("\n") == source.count("\n")
    assert text.count(f"{LOST_MAP}.lookup") == 3
    assert "events.ringbuf_output(&e, sizeof(f(1, (2))), 0)" in text
    assert "other.ringbuf_reserve(sizeof(*p))" in text


def test_perf_submit_failures_are_counted_too():
    text, slots = rewrite_output_calls("events.perf_submit(ctx, &e, sizeof(e));")
    assert slots == {"events": 0}
    assert text.startswith("({ int __bpfnb_r = events.perf_submit(ctx, &e, sizeof(e)); if (__bpfnb_r < 0)")


def test_source_without_outputs_is_unchanged():
    source = "counts.increment(key); x = y.lookup(&k);"
    assert rewrite_output_calls(source) == (source, {})


def test_hist_type_detection():
    source = """
    BPF_HISTOGRAM(lat); BPF_HISTOGRAM(q); BPF_HISTOGRAM(keyed, struct k_t);
    lat.increment(bpf_log2l(delta));
    q.increment(len);
    struct k_t key = {}; key.slot = bpf_log2l(x); keyed.atomic_increment(key);
    BPF_HISTOGRAM(init, struct k_t);
    struct k_t k2 = {.pid = 1, .slot = bpf_log2l(y)}; init.increment(k2);
    """
    assert hist_type_of(source, "lat") == "log2"
    assert hist_type_of(source, "q") == "linear"
    assert hist_type_of(source, "keyed") == "log2"
    assert hist_type_of(source, "init") == "log2"


def test_compile_message_quotes_the_users_line():
    source = "BPF_HASH(c, u32, u64);\nint f(void *ctx) {\n\treturn nope;\n}"
    log = (
        "/virtual/include/bcc/helpers.h:10:1: warning: noise\n"
        f"{CELL_FILE}:3:9: error: use of undeclared identifier 'nope'\n"
        "\treturn nope;\n"
        "1 error generated.\n"
    )
    message = compile_message(log, source)
    assert message.splitlines()[0] == "line 3:9: error: use of undeclared identifier 'nope'"
    assert message.splitlines()[1] == "    " + " " * 8 + "return nope;"
    assert message.splitlines()[2] == "    " + " " * 15 + "^"
    assert "helpers.h" not in message


def test_verifier_message_keeps_the_end():
    log = "\n".join([f"{i}: (bf) r1 = r{i}" for i in range(100)] + ["R1 invalid mem access 'scalar'",
                                                                     "processed 100 insns (limit 1000000)"])
    message = verifier_message(log)
    assert message.splitlines()[-1] == "R1 invalid mem access 'scalar'"
    assert len(message.splitlines()) == 12


def test_verifier_message_drops_line_markers_without_source():
    log = ";  @ bpf-cell:13\n0: (b7) r1 = 0\n; u64 *v = m.lookup(&k); @ bpf-cell:2\nR0 invalid mem access"
    assert verifier_message(log).splitlines() == ["0: (b7) r1 = 0", "; u64 *v = m.lookup(&k); @ bpf-cell:2",
                                                  "R0 invalid mem access"]
