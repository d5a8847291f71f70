#!/usr/bin/env python3
"""Writes BENCHMARKS.md from criterion's results (python3 standard library only).

    cargo bench --all-features             # writes target/criterion/**
    python3 scripts/bench-report.py        # reads it, writes BENCHMARKS.md

or both at once, recording the load average around the run:

    python3 scripts/bench-report.py --run
    python3 scripts/bench-report.py --run -- --bench verify   # one bench again

It reads every `target/criterion/**/new/benchmark.json` (ids, throughput) and the
`estimates.json` beside it, and writes one table per group with the ratio of each benchmark to its
floor or baseline, then the targets with PASS or MISS. Times are criterion's median estimate, with
its 95% confidence interval: the median shrugs off the spikes a busy machine adds. Groups this
script does not know still get a plain table; the axum benches and the HTTP load test get
"not measured yet" rows until their results exist.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

# verify: the floor is SHA-256 of the body alone; the targets are ratios to it.
VERIFY_SIZES = ["256B", "1KiB", "16KiB", "256KiB", "1MiB"]
VERIFY_TARGETS = {"1KiB": 1.25, "16KiB": 1.10, "256KiB": 1.10, "1MiB": 1.10}

# Where `--run` records each run, with the load average before and after.
RUN_LOG = "bench-report-runs.json"

# Where scripts/load.sh leaves the HTTP load test's results.
LOAD_TEST_RESULTS = pathlib.Path("load") / "results.json"

# Where tests/nats.rs's ignored throughput test leaves its results.
NATS_RESULTS = pathlib.Path("nats") / "results.json"
NATS_THROUGHPUT_MIN = 0.8

# The HTTP load test's targets: the receiver against the bare axum server, same run.
LOAD_THROUGHPUT_MIN = 0.8
LOAD_CPU_MAX = 1.3

ALLOCATION_TESTS = [
    "verifying_a_one_mebibyte_body_allocates_nothing",
    "a_failed_verification_allocates_nothing_either",
    "a_labelled_match_allocates_nothing",
]


# --- reading criterion's output ------------------------------------------------------------


class Bench:
    """One benchmark: ids, throughput and the median estimate in nanoseconds."""

    def __init__(self, meta: dict, estimates: dict):
        self.group = meta["group_id"]
        self.function = meta.get("function_id") or ""
        self.value = meta.get("value_str") or ""
        self.throughput = meta.get("throughput") or {}
        median = estimates["median"]
        self.ns = median["point_estimate"]
        interval = median["confidence_interval"]
        self.low = interval["lower_bound"]
        self.high = interval["upper_bound"]


def load(criterion_dir: pathlib.Path) -> dict[tuple[str, str, str], Bench]:
    benches = {}
    for meta_path in sorted(criterion_dir.glob("**/new/benchmark.json")):
        estimates_path = meta_path.with_name("estimates.json")
        if not estimates_path.exists():
            continue
        meta = json.loads(meta_path.read_text())
        bench = Bench(meta, json.loads(estimates_path.read_text()))
        benches[(bench.group, bench.function, bench.value)] = bench
    return benches


# --- formatting ------------------------------------------------------------------------------


def fmt_size(label: str) -> str:
    """`1KiB` as `1 KiB`."""
    for unit in ("KiB", "MiB", "B"):
        if label.endswith(unit) and label[: -len(unit)].isdigit():
            return f"{label[: -len(unit)]} {unit}"
    return label


def fmt_ns(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


# A 95% interval wider than this share of the median marks the measurement as noisy.
NOISY = 0.10


def is_noisy(bench: Bench) -> bool:
    return (bench.high - bench.low) > NOISY * bench.ns


def fmt_time(bench: Bench | None) -> str:
    if bench is None:
        return "not measured"
    mark = " †" if is_noisy(bench) else ""
    return f"{fmt_ns(bench.ns)} ({fmt_ns(bench.low)}–{fmt_ns(bench.high)}){mark}"


def fmt_throughput(bench: Bench | None) -> str:
    if bench is None or not bench.throughput:
        return ""
    if "Bytes" in bench.throughput:
        per_second = bench.throughput["Bytes"] / bench.ns * 1e9
        for unit, scale in (("GiB/s", 1 << 30), ("MiB/s", 1 << 20), ("KiB/s", 1 << 10)):
            if per_second >= scale:
                return f"{per_second / scale:.3g} {unit}"
        return f"{per_second:.3g} B/s"
    if "Elements" in bench.throughput:
        per_second = bench.throughput["Elements"] / bench.ns * 1e9
        return f"{per_second:,.0f} /s"
    return ""


def fmt_bytes(bench: Bench | None) -> str:
    if bench is None or "Bytes" not in bench.throughput:
        return ""
    return f"{bench.throughput['Bytes']:,} B"


def ratio(a: Bench | None, b: Bench | None) -> float | None:
    if a is None or b is None:
        return None
    return a.ns / b.ns


def fmt_ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def fmt_target_ratio(value: float | None) -> str:
    # Three decimals, so that a ratio just over its limit does not print as the limit.
    return "–" if value is None else f"{value:.3f}×"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


# --- sections --------------------------------------------------------------------------------


def verify_section(benches, get) -> list[str]:
    rows = []
    for size in VERIFY_SIZES:
        floor = get("verify", "sha256", size)
        verifier = get("verify", "verifier", size)
        naive = get("verify", "naive", size)
        if floor is None and verifier is None and naive is None:
            continue
        rows.append(
            [
                fmt_size(size),
                f"{fmt_time(floor)}<br>{fmt_throughput(floor)}",
                f"{fmt_time(verifier)}<br>{fmt_throughput(verifier)}",
                f"**{fmt_ratio(ratio(verifier, floor))}**",
                f"{fmt_time(naive)}<br>{fmt_throughput(naive)}",
                fmt_ratio(ratio(naive, floor)),
            ]
        )
    if not rows:
        return ["Not measured: run `cargo bench --bench verify`.", ""]
    return [
        "`sha256` is `sha2::Sha256::digest` of the body alone: HMAC-SHA256 hashes the body plus",
        "two or three blocks, so no verifier can beat it. `naive` keys a new `Hmac<Sha256>` per",
        "call and `hex::decode`s the header into a `Vec` before comparing.",
        "",
    ] + table(
        [
            "body",
            "`sha256` (floor)",
            "`Verifier::verify`",
            "verify ÷ floor",
            "naive",
            "naive ÷ floor",
        ],
        rows,
    )


def typed_vs_value_section(benches, get, group: str) -> list[str]:
    labels = []
    for bench in benches.values():
        if bench.group == group and bench.value not in labels:
            labels.append(bench.value)
    rows = []
    for label in labels:
        typed = get(group, "typed", label)
        value = get(group, "value", label)
        sample = typed or value
        rows.append(
            [
                f"`{label}`",
                fmt_bytes(sample),
                f"{fmt_time(typed)}<br>{fmt_throughput(typed)}",
                f"{fmt_time(value)}<br>{fmt_throughput(value)}",
                f"**{fmt_ratio(ratio(typed, value))}**",
            ]
        )
    if not rows:
        return ["Not measured: run `cargo bench --bench parse`.", ""]
    return table(
        [
            "body",
            "size",
            "`WebhookEvent::from_slice`",
            "`from_slice::<Value>` (baseline)",
            "typed ÷ baseline",
        ],
        rows,
    )


def verify_and_parse_section(get) -> list[str]:
    label = "data_update_1KiB"
    both = get("verify_and_parse", "verify+typed", label)
    value = get("verify_and_parse", "value", label)
    if both is None and value is None:
        return ["Not measured: run `cargo bench --bench parse`.", ""]
    return table(
        ["body", "verify + `WebhookEvent::from_slice`", "`from_slice::<Value>` alone", "ratio"],
        [
            [
                f"`{label}`",
                f"{fmt_time(both)}<br>{fmt_throughput(both)}",
                f"{fmt_time(value)}<br>{fmt_throughput(value)}",
                f"**{fmt_ratio(ratio(both, value))}**",
            ]
        ],
    )


DISPATCH_ROWS = [
    ("verify+parse", "verify + parse (baseline)"),
    ("dispatch", "verify + parse + dispatch to one handler"),
    ("idempotent_new", "… with `MemoryIdempotencyStore`, new delivery (store full)"),
    ("idempotent_duplicate", "… with `MemoryIdempotencyStore`, duplicate"),
]


def dispatch_section(get) -> list[str]:
    label = "data_update_1KiB"
    baseline = get("dispatch", "verify+parse", label)
    rows = []
    for function, title in DISPATCH_ROWS:
        bench = get("dispatch", function, label)
        if bench is None:
            continue
        added = "–" if baseline is None or bench is baseline else f"{bench.ns - baseline.ns:+,.0f} ns"
        rows.append(
            [
                title,
                fmt_time(bench),
                fmt_throughput(bench),
                added,
                fmt_ratio(ratio(bench, baseline)),
            ]
        )
    if not rows:
        return ["Not measured: run `cargo bench --bench dispatch`.", ""]
    return [
        "A realistic 1 KiB lease DATA_UPDATE with its `propexo-signature` header, each delivery",
        "with its own job id, made outside the timed part. The handler is a plain closure, so the",
        "dispatch future completes at its first poll (a no-op waker polls it once). The store",
        "starts full (100 000 deliveries, its default bound), so a new delivery also evicts the",
        "oldest; a duplicate is hashed, recognised and acknowledged without parsing.",
        "",
    ] + table(
        ["path", "time per delivery", "deliveries/s (one core)", "added to baseline", "÷ baseline"],
        rows,
    )


def generic_section(benches, group: str) -> list[str]:
    rows = [
        [f"`{b.function}`", f"`{b.value}`", fmt_time(b), fmt_throughput(b)]
        for b in benches.values()
        if b.group == group
    ]
    return table(["benchmark", "input", "time", "throughput"], rows)


def axum_section(get) -> list[str]:
    bare = get("axum", "bare", "")
    if bare is None:
        return table(["benchmark", "time"], [["axum: not measured yet (`cargo bench --all-features --bench axum`)", "–"]])
    rows = []
    for name, what in [
        ("bare", "bare axum handler reading the body as `Bytes` (the floor)"),
        ("extractor", "handler taking the `Webhook` extractor (verify, then parse)"),
        ("route", "`propexo_webhooks::axum::route`: checks, verify, parse, dispatch to one handler"),
    ]:
        bench = get("axum", name, "")
        if bench is not None:
            rows.append([f"`{name}`: {what}", fmt_time(bench), fmt_ratio(ratio(bench, bare))])
    return [
        "One signed 1 KiB lease DATA_UPDATE through the router in process",
        "(`tower::ServiceExt::oneshot`, `benches/axum.rs`):",
        "",
    ] + table(["request handled by", "time", "÷ bare"], rows)


def load_results(target_dir: pathlib.Path) -> dict | None:
    path = target_dir / LOAD_TEST_RESULTS
    return json.loads(path.read_text()) if path.exists() else None


def load_test_section(target_dir: pathlib.Path, get) -> list[str]:
    data = load_results(target_dir)
    if data is None:
        return table(["measure", "value"], [["HTTP load test: not measured yet (`scripts/load.sh`)", "–"]])
    rows = []
    for name, key in [("`examples/axum_receiver.rs`", "receiver"), ("bare axum (`benches/load/bare_axum.rs`)", "bare")]:
        run = data[key]
        rows.append(
            [
                name,
                f"{run['requests_per_s']:,.0f}",
                f"{run['p50_us'] / 1000:.2f} ms",
                f"{run['p99_us'] / 1000:.2f} ms",
                str(run["non_2xx"]),
                f"{run['cpu_us_per_request']:.1f} µs",
            ]
        )
    return [
        f"`scripts/load.sh`, {data['date']}: wrk, {data['connections']} connections for "
        f"{data['duration']} per server over 127.0.0.1, signed 1 KiB lease DATA_UPDATEs; each "
        "server pinned to CPU 0 with one tokio worker, wrk to CPU 1. The receiver verifies, "
        "parses and dispatches every request to its handlers, with its idempotency store on "
        "(told to forget at once, so the repeated body is handled in full each time).",
        "",
    ] + table(["server", "requests/s", "p50", "p99", "non-2xx", "server CPU per request"], rows) + (
        load_budget(data, get)
    )


INBOX_RESULTS = "inbox-bench.json"
INBOX_MIN = 0.8


def inbox_section(target_dir: pathlib.Path) -> list[str]:
    """Acknowledged deliveries/s into each durable inbox beside its engine's floor."""
    path = target_dir / INBOX_RESULTS
    if not path.exists():
        return table(["measure", "value"], [["inbox: not measured yet (`cargo bench --bench inbox`)", "–"]])
    data = json.loads(path.read_text())
    rows = []
    for row in data["rows"]:
        value = row["receiver_per_s"] / row["floor_per_s"] if row["floor_per_s"] else None
        rows.append(
            [
                row["backend"],
                str(row["concurrency"]),
                f"{row['receiver_per_s']:,.0f}",
                f"{row['floor_per_s']:,.0f}",
                fmt_ratio(value),
                status(value, INBOX_MIN, at_least=True),
            ]
        )
    return [
        f"`benches/inbox.rs`, {data['date']}, {data['seconds']:g} s per measurement: signed 1 KiB "
        "lease DATA_UPDATEs, each distinct, through the axum route in process (verify, store, "
        "202) into each inbox, beside a bare `INSERT ...; COMMIT` of the same row with the same "
        "durability (SQLite: WAL, `synchronous=FULL`, one connection per thread, `BEGIN "
        "IMMEDIATE`; PostgreSQL: `fsync=on`, one connection per concurrent request). Target: "
        f"at least {INBOX_MIN}× the floor.",
        "",
    ] + table(
        ["inbox", "concurrent requests", "acknowledged/s", "floor/s", "ratio", f"≥ {INBOX_MIN}×"], rows
    )


def load_budget(data: dict, get) -> list[str]:
    """What the CPU target leaves for the receiver's own work, beside what that work costs."""
    bare_cpu = data["bare"]["cpu_us_per_request"]
    budget = (LOAD_CPU_MAX - 1.0) * bare_cpu
    extra = data["receiver"]["cpu_us_per_request"] - bare_cpu
    lines = [
        f"The bare server spends {bare_cpu:.1f} µs of CPU per request, kernel included, so the "
        f"{LOAD_CPU_MAX:.1f}× target leaves {budget:.1f} µs for everything the receiver adds; "
        f"under this load it adds {extra:.1f} µs.",
    ]
    route, bare, extractor = (get("axum", name, "") for name in ("route", "bare", "extractor"))
    parse = get("verify_and_parse", "verify+typed", "data_update_1KiB")
    if route and bare and parse:
        lines[0] += (
            f" In process (`benches/axum.rs`), the route adds {(route.ns - bare.ns) / 1000:.1f} µs "
            f"to a bare handler, of which verifying and parsing the body alone are "
            f"{parse.ns / 1000:.1f} µs (`benches/parse.rs`); a saturated server pays more per "
            "request than the work itself, as fewer requests share each wake-up and system call."
        )
    return lines + [""]


def nats_results(target_dir: pathlib.Path) -> dict | None:
    path = target_dir / NATS_RESULTS
    return json.loads(path.read_text()) if path.exists() else None


NATS_COMMAND = (
    "cargo test --release --features nats,axum,testkit --test nats throughput -- --ignored --nocapture"
)


def nats_section(target_dir: pathlib.Path) -> list[str]:
    data = nats_results(target_dir)
    if data is None:
        return table(["measure", "value"], [[f"not measured yet (`{NATS_COMMAND}`)", "–"]])
    rows = [
        [
            str(row["concurrency"]),
            f"{row['floor_per_s']:,.0f}",
            f"{row['receiver_per_s']:,.0f}",
            fmt_ratio(row["receiver_per_s"] / row["floor_per_s"]),
        ]
        for row in data["rows"]
    ]
    return [
        f"`{NATS_COMMAND}`, {data['date']} ({data['profile']}, load average "
        f"{data['load_before']} before, {data['load_after']} after): a throw-away `nats-server -js` "
        "(file storage) on 127.0.0.1; signed 1 KiB DATA_UPDATEs, each unique, sent by that many "
        f"concurrent tasks for {data['seconds_per_run']} s per measure, best of two rounds. The "
        "receiver (`Receiver::with_inbox` with `NatsInbox`, in process through "
        "`tower::ServiceExt::oneshot`) verifies each, publishes it and answers 202 once "
        "JetStream acknowledged it; the floor publishes the same bytes and headers with "
        "async-nats to a stream of the same settings and awaits the same ack. Client, receiver "
        "and nats-server share the machine's cores.",
        "",
    ] + table(
        ["concurrent requests", "bare JetStream publish (floor), acked/s", "receiver into JetStream, acked/s", "÷ floor"],
        rows,
    )


# --- targets ---------------------------------------------------------------------------------


def allocation_check(skip: bool) -> tuple[str, str]:
    """Runs tests/allocations.rs, which asserts that verifying allocates nothing."""
    if skip:
        return "not checked (--skip-tests)", "–"
    result = subprocess.run(
        ["cargo", "test", "--all-features", "--test", "allocations"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    passed = [name for name in ALLOCATION_TESTS if f"test {name} ... ok" in result.stdout]
    if result.returncode == 0 and len(passed) == len(ALLOCATION_TESTS):
        return "0 allocations (asserted by `tests/allocations.rs`)", "PASS"
    if result.returncode == 0:
        return "`tests/allocations.rs` ran, but not every test named here", "MISS"
    return "`tests/allocations.rs` failed", "MISS"


def status(value: float | None, limit: float, strict: bool = False, at_least: bool = False) -> str:
    if value is None:
        return "–"
    if at_least:
        ok = value >= limit
    else:
        ok = value < limit if strict else value <= limit
    return "PASS" if ok else "MISS"


def targets_section(get, skip_tests: bool, target_dir: pathlib.Path) -> list[str]:
    rows = []
    for size, limit in VERIFY_TARGETS.items():
        value = ratio(get("verify", "verifier", size), get("verify", "sha256", size))
        rows.append(
            [
                f"`Verifier::verify` of {fmt_size(size)} ≤ {limit:.2f}× raw SHA-256",
                fmt_target_ratio(value),
                status(value, limit),
            ]
        )
    allocations, allocation_status = allocation_check(skip_tests)
    rows.append(
        [
            "zero heap allocations per verification (`tests/allocations.rs`: "
            + ", ".join(f"`{name}`" for name in ALLOCATION_TESTS)
            + ")",
            allocations,
            allocation_status,
        ]
    )
    value = ratio(
        get("verify_and_parse", "verify+typed", "data_update_1KiB"),
        get("verify_and_parse", "value", "data_update_1KiB"),
    )
    rows.append(
        [
            "verify + typed parse of a 1 KiB DATA_UPDATE faster than "
            "`serde_json::from_slice::<Value>` of the same bytes alone",
            fmt_target_ratio(value),
            status(value, 1.0, strict=True),
        ]
    )
    data = load_results(target_dir)
    throughput = data["throughput_ratio"] if data else None
    cpu = data["cpu_ratio"] if data else None
    rows.append(
        [
            f"axum receiver's requests/s ≥ {LOAD_THROUGHPUT_MIN:.1f}× the bare axum server's "
            "(`scripts/load.sh`)",
            fmt_target_ratio(throughput),
            status(throughput, LOAD_THROUGHPUT_MIN, at_least=True),
        ]
    )
    rows.append(
        [
            f"axum receiver's CPU per request ≤ {LOAD_CPU_MAX:.1f}× the bare axum server's "
            "(`scripts/load.sh`)",
            fmt_target_ratio(cpu),
            status(cpu, LOAD_CPU_MAX),
        ]
    )
    nats = nats_results(target_dir)
    for row in nats["rows"] if nats else []:
        value = row["receiver_per_s"] / row["floor_per_s"]
        rows.append(
            [
                f"receiver into JetStream at {row['concurrency']} concurrent request(s) ≥ "
                f"{NATS_THROUGHPUT_MIN:.1f}× a bare async-nats publish (`tests/nats.rs`)",
                fmt_target_ratio(value),
                status(value, NATS_THROUGHPUT_MIN, at_least=True),
            ]
        )
    return table(["target", "measured", "status"], rows)


# --- the machine -----------------------------------------------------------------------------


def command_output(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model() -> str:
    for line in command_output(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def load_average() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def record_run(criterion_dir: pathlib.Path, command: list[str], before: str, after: str) -> None:
    """Remembers each `--run`, so that the report says how loaded the machine was."""
    log = criterion_dir / RUN_LOG
    runs = json.loads(log.read_text()) if log.exists() else []
    runs.append(
        {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join(command),
            "load_before": before,
            "load_after": after,
        }
    )
    log.write_text(json.dumps(runs, indent=1))


def runs_section(criterion_dir: pathlib.Path) -> list[str]:
    log = criterion_dir / RUN_LOG
    if not log.exists():
        return []
    rows = [
        [
            # A `|` in a filter would end the table cell.
            f"`{run['command']}`".replace("|", "\\|"),
            run["date"],
            f"{run['load_before']} / {run['load_after']}",
        ]
        for run in json.loads(log.read_text())
    ]
    return [
        "Runs whose results are shown (a later run of a benchmark replaces its earlier result):",
        "",
    ] + table(["command", "finished", "load average (1, 5, 15 min) before / after"], rows)


def machine_section() -> list[str]:
    rows = [
        ["CPU", cpu_model()],
        ["cores", str(os.cpu_count() or "unknown")],
        ["SHA extensions", "yes" if " sha_ni " in f" {cpu_flags()} " else "no"],
        ["rustc", command_output(["rustc", "-V"])],
        ["OS", f"{platform.system()} {platform.release()}"],
        ["date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")],
    ]
    return table(["", ""], rows)


def cpu_flags() -> str:
    for line in command_output(["lscpu"]).splitlines():
        if line.startswith("Flags:"):
            return line.split(":", 1)[1]
    return ""


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--run",
        action="store_true",
        help="run `cargo bench --all-features` first, with ARGS after `--` if given "
        "(e.g. `-- --bench verify`); a run of everything starts a new run log",
    )
    parser.add_argument(
        "--skip-tests",
        action="store_true",
        help="do not run tests/allocations.rs for the allocation target",
    )
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"), help="file to write")
    parser.add_argument("cargo_args", nargs="*", metavar="ARGS", help="passed to `cargo bench`")
    args = parser.parse_args()

    target_dir = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    criterion_dir = target_dir / "criterion"
    if args.run:
        command = ["cargo", "bench", "--all-features", *args.cargo_args]
        if not args.cargo_args and (criterion_dir / RUN_LOG).exists():
            (criterion_dir / RUN_LOG).unlink()
        before = load_average()
        subprocess.run(command, cwd=ROOT, check=True)
        record_run(criterion_dir, command, before, load_average())

    benches = load(criterion_dir)
    if not benches:
        print(f"no criterion results under {target_dir / 'criterion'}: run `cargo bench`", file=sys.stderr)
        return 1

    def get(group: str, function: str, value: str) -> Bench | None:
        return benches.get((group, function, value))

    known = {"verify", "parse", "parse_data_update", "verify_and_parse", "dispatch"}
    lines = [
        "# Benchmarks",
        "",
        "<!-- Written by scripts/bench-report.py from target/criterion: do not edit by hand. -->",
        "",
        "How fast a receiver built on this crate takes Propexo deliveries, in process, each",
        "measure beside its floor or naive baseline from the same run.",
        "",
        "## How to run",
        "",
        "```sh",
        "cargo bench --all-features           # criterion: every group, about 6 minutes",
        "python3 scripts/bench-report.py      # rewrites this file from target/criterion",
        "# or both, recording the load average around the run:",
        "python3 scripts/bench-report.py --run",
        "# re-run one bench (or a filter) that a busy machine disturbed, then rewrite:",
        "python3 scripts/bench-report.py --run -- --bench verify -- verify/sha256",
        "```",
        "",
        "Run on an idle machine: another busy core slows the benchmarks unevenly (check `uptime`",
        "first). Times are criterion's median with its 95% confidence interval; ratios compare",
        "medians. † marks an interval wider than 10% of the median: a busy machine disturbed",
        "that measurement, run it again. A ratio a little under 1.00× to SHA-256 is such noise",
        "too: HMAC hashes the body plus two or three blocks. CI only compiles the benches",
        "(`cargo bench --no-run`), it times nothing.",
        "",
        "## Machine",
        "",
    ]
    lines += machine_section() + runs_section(criterion_dir)
    lines += ["## Targets", ""] + targets_section(get, args.skip_tests, target_dir)
    lines += ["## Verification (`benches/verify.rs`)", ""] + verify_section(benches, get)
    lines += [
        "## Parsing (`benches/parse.rs`)",
        "",
        "Each trigger's fixture (`tests/fixtures/events/*.envelope.json`) into `WebhookEvent`,",
        "against `serde_json::from_slice::<serde_json::Value>` of the same bytes.",
        "",
    ] + typed_vs_value_section(benches, get, "parse")
    lines += [
        "Realistic lease DATA_UPDATEs: 1 KiB is a routine change (status, dates, balance,",
        "`last_seen`); 64 KiB is a lease hydrated after a partial DATA_NEW (every field, the",
        "residents' metadata, hundreds of custom fields). See `benches/common/mod.rs`.",
        "",
    ] + typed_vs_value_section(benches, get, "parse_data_update")
    lines += [
        "What a receiver does with each delivery, verify then parse, against the `Value` parse",
        "alone:",
        "",
    ] + verify_and_parse_section(get)
    lines += ["## Dispatch (`benches/dispatch.rs`)", ""] + dispatch_section(get)
    lines += ["## axum (`benches/axum.rs`)", ""] + axum_section(get)
    lines += ["## HTTP load test", ""] + load_test_section(target_dir, get)
    lines += ["## Durable inboxes (`benches/inbox.rs`)", ""] + inbox_section(target_dir)
    lines += ["## JetStream hand-off (`tests/nats.rs`)", ""] + nats_section(target_dir)
    # scripts/load-cli.sh prints this table; its figures are kept in benches/load/cli-vs-wrk.md.
    lines += (ROOT / "benches" / "load" / "cli-vs-wrk.md").read_text().rstrip("\n").splitlines() + [""]
    others = sorted({b.group for b in benches.values()} - known)
    others = [group for group in others if not group.startswith("axum")]
    for group in others:
        lines += [f"## `{group}`", ""] + generic_section(benches, group)

    text = "\n".join(lines).rstrip("\n") + "\n"
    pathlib.Path(args.out).write_text(text)
    print(f"wrote {args.out}")
    noisy = sorted(f"{b.group}/{b.function}/{b.value}" for b in benches.values() if is_noisy(b))
    if noisy:
        print("noisy, worth running again: " + ", ".join(noisy), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
