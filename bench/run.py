#!/usr/bin/env python3
"""moq-audio benchmark suite: one command runs every measurement on this machine and writes
results.md (with machine, versions and date), results.json and PNG figures.

    python bench/run.py                 # full run (~20 min incl. a 10 min soak) → bench/
    python bench/run.py --quick         # CI smoke (< 60 s) → bench/smoke/
    python bench/run.py --only stale    # one measurement; merged into an existing results.json

Measurements: stale (stale audio after an interruption vs upstream moq-rs, and flush → first new
sample), flush (flush() call latency), encode (pipeline vs raw libopus), streams (CPU per
real-time stream), write (write() overhead), memory (60 s written at once), soak (RSS over
a long run with a flush every 2 s).

Progress goes to stderr. Each measurement that loads moq_audio runs in its own subprocess, so
one process's state (threads, allocator) does not leak into the next.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from _common import log

MEASUREMENTS = ["stale", "flush", "encode", "streams", "write", "memory", "soak"]
RELEASE_VENV = os.path.join(HERE, ".venv-release")


def default_python() -> str:
    py = os.path.join(RELEASE_VENV, "bin", "python")
    return py if os.path.exists(py) else sys.executable


# --- one measurement (runs in a subprocess) -------------------------------------------------------


def measure(name: str, opts: dict) -> dict:
    quick = opts["quick"]
    if name == "stale":
        import stale

        return stale.run(quick=quick, trials=opts.get("trials"))
    if name == "flush":
        import flush_latency

        return flush_latency.run(quick=quick)
    if name == "encode":
        import encode

        return encode.run(quick=quick, profile=opts["profile"], build_first=not opts["no_build"])
    if name == "streams":
        import streams

        return streams.run(quick=quick, seconds=opts.get("stream_seconds"))
    if name == "write":
        import write_overhead

        return write_overhead.run(quick=quick)
    if name == "memory":
        import memory

        return memory.run(quick=quick, parts=("burst",))
    if name == "soak":
        import memory

        return memory.run(quick=quick, soak_seconds=opts.get("soak_seconds"), parts=("soak",))
    raise ValueError(name)


def child_main(name: str, opts_json: str, out_path: str) -> None:
    opts = json.loads(opts_json)
    code = 0
    try:
        res = measure(name, opts)
        with open(out_path, "w") as fh:
            json.dump(res, fh)
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter finalisation: native runtime threads must not run into it (and our result
    # is already on disk).
    os._exit(code)


# --- metadata --------------------------------------------------------------------------------------


def sh(cmd: list[str], cwd: str = ROOT) -> str:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=30, check=False).stdout.strip()
    except Exception:  # noqa: BLE001
        return ""


def machine_meta(python: str) -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram = 0.0
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    ram = int(line.split()[1]) / 2**20
    except OSError:
        pass
    probe = (
        "import json, importlib.metadata as md, platform, os\n"
        "v = lambda p: (md.version(p) if p in {d.metadata['Name'] for d in md.distributions()} else None)\n"
        "import moq_audio, numpy\n"
        "print(json.dumps({'moq_audio_version': moq_audio.__version__, 'moq_audio_native': moq_audio._native.__file__,"
        " 'moq_rs_version': v('moq-rs'), 'moq_ffi_version': v('moq-ffi'), 'numpy': numpy.__version__,"
        " 'python': platform.python_version(), 'profile': getattr(moq_audio._native, 'BUILD_PROFILE', None)}))\n"
        "import sys; sys.stdout.flush(); os._exit(0)\n"
    )
    try:
        info = json.loads(sh([python, "-c", probe]) or "{}")
    except json.JSONDecodeError:
        info = {}
    native = info.get("moq_audio_native", "")
    if ".venv-release" in native:
        commit = ""
        try:
            with open(os.path.join(RELEASE_VENV, "BUILT_FROM_COMMIT")) as fh:
                commit = f" built from commit {fh.read().strip()}"
        except OSError:
            pass
        build = f"release wheel (`maturin build --release`, opt-level 3){commit}, installed in bench/.venv-release"
    elif info.get("profile") == "release":
        build = "editable `maturin develop --release` build: release profile (opt-level 3)"
    else:
        build = (
            "editable `maturin develop` build: dev profile (our crates at opt-level 0, dependencies at "
            "opt-level 2, see Cargo.toml); a release wheel would be faster"
        )
    git = sh(["git", "rev-parse", "--short", "HEAD"])
    if sh(["git", "status", "--porcelain", "--untracked-files=no"]):
        git += " + uncommitted changes"
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "ram_gib": ram,
        "kernel": f"{platform.system()} {platform.release()}",
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "rustc": sh(["rustc", "--version"]),
        "git": git,
        "build_profile": build,
        "python_executable": python,
        **info,
    }


# --- driver ----------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Run the moq-audio benchmarks and write results.md, results.json and PNG figures.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Measurements: " + ", ".join(MEASUREMENTS),
    )
    ap.add_argument(
        "--quick", action="store_true", help="CI smoke: a few trials of everything, < 60 s, writes to bench/smoke/"
    )
    ap.add_argument("--out", help="output directory (default: bench/, or bench/smoke/ with --quick)")
    ap.add_argument(
        "--only",
        action="append",
        help="run only this measurement (repeatable or comma-separated); merges into an existing results.json",
    )
    ap.add_argument("--skip", action="append", help="skip this measurement (repeatable or comma-separated)")
    ap.add_argument("--soak-seconds", type=float, help="soak length (default 600 s, 6 s with --quick)")
    ap.add_argument("--trials", type=int, help="trials per configuration for 'stale' (default 30, 1 with --quick)")
    ap.add_argument("--stream-seconds", type=float, help="measured seconds for 'streams' (default 20, 5 with --quick)")
    ap.add_argument(
        "--profile",
        choices=["release", "dev"],
        help="cargo profile of the encode benchmark (default release, dev with --quick)",
    )
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build for the encode benchmark")
    ap.add_argument(
        "--python",
        help="interpreter with moq_audio and moq-rs installed (default: bench/.venv-release if present, else this one)",
    )
    ap.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="only redraw the figures and results.md from the existing results.json",
    )
    ap.add_argument("--_child", nargs=3, metavar=("NAME", "OPTS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args._child:
        child_main(*args._child)
        return 0

    out = os.path.abspath(args.out or os.path.join(HERE, "smoke" if args.quick else ""))
    os.makedirs(out, exist_ok=True)
    selected = MEASUREMENTS[:]
    if args.only:
        want = [x for o in args.only for x in o.split(",") if x]
        bad = [x for x in want if x not in MEASUREMENTS]
        if bad:
            ap.error(f"unknown measurement(s) {bad}; choose from {MEASUREMENTS}")
        selected = [m for m in MEASUREMENTS if m in want]
    if args.skip:
        skip = {x for o in args.skip for x in o.split(",")}
        selected = [m for m in selected if m not in skip]
    python = args.python or default_python()
    if os.sep in python:
        python = os.path.abspath(python)  # children run with cwd=bench/
    opts = {
        "quick": args.quick,
        "trials": args.trials,
        "soak_seconds": args.soak_seconds,
        "stream_seconds": args.stream_seconds,
        "profile": args.profile or ("dev" if args.quick else "release"),
        "no_build": args.no_build,
    }
    command = "python bench/run.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    log(f"moq-audio bench: {', '.join(selected)} → {out} (python: {python})")
    t_start = time.monotonic()
    meta = machine_meta(python)
    meta.update({"quick": args.quick, "commands": [command.strip()]})

    results_path = os.path.join(out, "results.json")
    if args.report_only:
        with open(results_path) as fh:
            return write_outputs(json.load(fh), out, args.no_plots)
    results: dict = {"measurements": {}}
    if args.only and os.path.exists(results_path):
        with open(results_path) as fh:
            results = json.load(fh)
        results.setdefault("measurements", {})
    durations = results.get("meta", {}).get("durations_s", {})
    failed = []
    for name in selected:
        log(f"== {name}")
        t0 = time.monotonic()
        tmp = os.path.join(out, f".{name}.json")
        if os.path.exists(tmp):
            os.remove(tmp)
        cmd = [python, os.path.abspath(__file__), "--_child", name, json.dumps(opts), tmp]
        proc = subprocess.run(cmd, cwd=HERE, check=False)  # a failed measurement is reported, the rest go on
        if proc.returncode != 0 or not os.path.exists(tmp):
            log(f"!! {name} failed (exit {proc.returncode})")
            failed.append(name)
            continue
        with open(tmp) as fh:
            res = json.load(fh)
        os.remove(tmp)
        res["measured_at"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        res["command"] = command.strip()
        results["measurements"][name] = res
        durations[name] = round(time.monotonic() - t0, 1)
        log(f"== {name} done in {durations[name]:.0f} s")
    meta["durations_s"] = durations
    meta["duration_s"] = time.monotonic() - t_start
    if "encode" in results["measurements"]:
        meta["encode_profile"] = results["measurements"]["encode"].get("profile")
        meta["libopus"] = results["measurements"]["encode"].get("libopus")
    if args.only and "meta" in results:
        meta["duration_s"] = sum(durations.values())
        from report import commands_of

        meta["commands"] = commands_of(results["meta"]) + meta["commands"]
    results["meta"] = meta
    results["failed"] = failed
    with open(results_path, "w") as fh:
        json.dump(results, fh)
    code = write_outputs(results, out, args.no_plots)
    log(f"done in {time.monotonic() - t_start:.0f} s")
    if failed:
        log(f"FAILED: {', '.join(failed)}")
        return 1
    return code


def write_outputs(results: dict, out: str, no_plots: bool) -> int:
    if not no_plots:
        try:
            import plots
        except ImportError as e:
            log(f"no figures: {e} (pip install -r bench/requirements.txt)")
        else:
            files = plots.all_figures(results, out)
            log(f"figures: {', '.join(os.path.basename(f) for f in files)}")
    import report

    report.write_markdown(results, out)
    log(f"wrote {os.path.join(out, 'results.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
