#!/usr/bin/env python3
"""ocirun's own runtime-spec conformance suite: one check per MUST / SHOULD of runtime.md,
runtime-linux.md, config.md and config-linux.md that a Linux runtime can be tested on, each run
against real busybox containers and, where the requirement is about the container, observed
from inside it.

    conformance/suite.py --runtime PATH [--only PATTERN] [--tap FILE] [--table] [--jobs N] [--list]
    conformance/suite.py --compare A.tap B.tap [...]     side-by-side table of saved TAP results

The runtime binary is driven through runc's command line (create/start/state/kill/delete/run
with a private --root), so the same checks run against ocirun, runc or crun. Output: TAP 13 on
stdout (also written to FILE with --tap), then a summary table per spec file (with --table, one
row per check too), then `N passed, M failed, K skipped`. The exit status is 0 when nothing
failed. --only takes a regular expression searched in the check ids (e.g. `config-linux`,
`#hooks-`, `state|kill`). Needs root; stdlib only.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from checks import _harness as H  # noqa: E402
from checks import load_all  # noqa: E402

SPEC_FILES = ["runtime.md", "runtime-linux.md", "config.md", "config-linux.md"]


class Outcome:
    def __init__(self, check: H.Check, status: str, reason: str = "", seconds: float = 0.0, log=None):
        self.check = check
        self.status = status  # pass | fail | skip
        self.reason = reason
        self.seconds = seconds
        self.log = log or []


def run_one(check: H.Check, index: int, runtime: str, base_tmp: str, verbose: bool) -> Outcome:
    t0 = time.monotonic()
    ctx = None
    status, reason = "fail", ""
    try:
        ctx = H.Ctx(runtime, check.id, index, base_tmp, verbose)
        note = check.fn(ctx)
        status, reason = "pass", note or ""
    except H.Skip as e:
        status, reason = "skip", str(e)
    except H.Fail as e:
        status, reason = "fail", str(e)
    except Exception as e:  # a check that breaks is a failure, with what broke
        status = "fail"
        reason = f"check raised {type(e).__name__}: {e}"
        if verbose:
            reason += "\n" + traceback.format_exc()
    log = []
    if ctx is not None:
        log = list(ctx.log)
        try:
            problems = ctx.cleanup()
        except Exception as e:  # noqa: BLE001
            problems = [f"cleanup raised {type(e).__name__}: {e}"]
        if problems and status == "pass":
            status, reason = "fail", "cleanup: " + "; ".join(problems)
        elif problems:
            reason += " [cleanup: " + "; ".join(problems) + "]"
    return Outcome(check, status, reason, time.monotonic() - t0, log)


def tap_lines(n: int, outcome: Outcome, verbose: bool) -> list[str]:
    c = outcome.check
    desc = f"{c.id} [{c.level}] {c.text}"
    if outcome.status == "skip":
        return [f"ok {n} - {desc} # SKIP {one_line(outcome.reason)}"]
    lines = [f"{'ok' if outcome.status == 'pass' else 'not ok'} {n} - {desc}"]
    if outcome.status == "fail" or (outcome.reason and verbose):
        lines.append("  ---")
        lines.append(f"  reason: {yaml_str(outcome.reason)}")
        if verbose and outcome.log:
            lines.append("  calls:")
            lines.extend(f"    - {yaml_str(entry)}" for entry in outcome.log)
        lines.append(f"  seconds: {outcome.seconds:.2f}")
        lines.append("  ...")
    return lines


def one_line(s: str) -> str:
    return " ".join(s.split())


def yaml_str(s: str) -> str:
    s = one_line(s)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def summary_table(outcomes: list[Outcome]) -> list[str]:
    rows = []
    files = [f for f in SPEC_FILES if any(o.check.spec_file == f for o in outcomes)]
    files += sorted({o.check.spec_file for o in outcomes} - set(files))
    header = f"| {'spec file':<17} | checks | pass | fail | skip |"
    rows.append(header)
    rows.append("|" + "-" * 19 + "|--------|------|------|------|")
    tot = [0, 0, 0, 0]
    for f in files:
        os_ = [o for o in outcomes if o.check.spec_file == f]
        cnt = [len(os_)] + [sum(o.status == s for o in os_) for s in ("pass", "fail", "skip")]
        tot = [a + b for a, b in zip(tot, cnt)]
        rows.append(f"| {f:<17} | {cnt[0]:>6} | {cnt[1]:>4} | {cnt[2]:>4} | {cnt[3]:>4} |")
    rows.append(f"| {'total':<17} | {tot[0]:>6} | {tot[1]:>4} | {tot[2]:>4} | {tot[3]:>4} |")
    return rows


def check_table(outcomes: list[Outcome]) -> list[str]:
    w = max([len(o.check.id) for o in outcomes] + [5])
    rows = [f"| {'check':<{w}} | level    | result | reason |", f"|{'-' * (w + 2)}|----------|--------|--------|"]
    for o in outcomes:
        reason = one_line(o.reason)
        if len(reason) > 160:
            reason = reason[:157] + "..."
        rows.append(f"| {o.check.id:<{w}} | {o.check.level:<8} | {o.status:<6} | {reason.replace('|', '/')} |")
    return rows


def runtime_version(runtime: str) -> list[str]:
    out = Path(tempfile.mkstemp(prefix=f"{H.MARK}-version-")[1])
    try:
        with open(out, "wb") as f:
            H.spawn([runtime, "--version"], stdout=f, stderr=f, timeout=10)
        return [ln for ln in out.read_text(errors="replace").splitlines() if ln.strip()][:4]
    finally:
        out.unlink()


def leftovers() -> list[str]:
    """What this session's checks left on the host: mounts, cgroups, processes in them."""
    found = []
    for line in (H.read("/proc/self/mountinfo") or "").splitlines():
        if H.MARK in line:
            found.append("mount " + line.split()[4])
    for base in set(H.cgroup_mounts().values()) | ({H.CGROUP_ROOT} if H.cgroup_v2_only() else set()):
        try:
            names = os.listdir(base)
        except OSError:
            continue
        found += [f"cgroup {base}/{n}" for n in names if n.startswith(H.MARK)]
    for pid in os.listdir("/proc"):
        if pid.isdigit() and H.MARK in (H.read(f"/proc/{pid}/cgroup") or ""):
            found.append(f"process {pid}")
    return found


# --- comparing saved TAP files ------------------------------------------------------------------

TAP_RE = re.compile(r"^(ok|not ok) \d+ - (\S+) \[([A-Z ]+)\] (.*?)(?: # SKIP (.*))?$")


def parse_tap(path: str) -> dict[str, tuple[str, str, str]]:
    """check id -> (status, level, reason) from a TAP file this suite wrote."""
    out: dict[str, tuple[str, str, str]] = {}
    last = None
    for line in Path(path).read_text().splitlines():
        m = TAP_RE.match(line)
        if m:
            ok, cid, level, _text, skip = m.groups()
            status = "skip" if skip is not None else ("pass" if ok == "ok" else "fail")
            out[cid] = (status, level, skip or "")
            last = cid
        elif last and line.strip().startswith("reason:"):
            st, lv, _ = out[last]
            out[last] = (st, lv, line.split(":", 1)[1].strip().strip('"'))
    return out


def compare(paths: list[str]) -> int:
    results = [parse_tap(p) for p in paths]
    names = [Path(p).stem for p in paths]
    ids: list[str] = []
    for r in results:
        ids += [i for i in r if i not in ids]
    w = max([len(i) for i in ids] + [5])
    print(f"| {'check':<{w}} | level | " + " | ".join(f"{n:<6}" for n in names) + " |")
    print(f"|{'-' * (w + 2)}|-------|" + "|".join("-" * (max(6, len(n)) + 2) for n in names) + "|")
    for i in ids:
        level = next((r[i][1] for r in results if i in r), "")
        cells = [r.get(i, ("-", "", ""))[0] for r in results]
        mark = "" if len(set(cells)) == 1 else " *"
        print(f"| {i:<{w}} | {level:<5} | " + " | ".join(f"{c:<{max(6, len(n))}}" for c, n in zip(cells, names)) + f" |{mark}")
    print()
    for n, r in zip(names, results):
        vals = list(r.values())
        print(f"{n}: {sum(v[0] == 'pass' for v in vals)} passed, {sum(v[0] == 'fail' for v in vals)} failed, "
              f"{sum(v[0] == 'skip' for v in vals)} skipped")
    return 0


# --- main --------------------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runtime", help="runtime binary to test (runc's command line)")
    ap.add_argument("--only", help="regular expression: run the checks whose id it matches")
    ap.add_argument("--tap", help="also write the TAP output to this file")
    ap.add_argument("--table", action="store_true", help="also print one table row per check")
    ap.add_argument("--jobs", "-j", type=int, default=2, help="checks run at once (1 or 2; default 2)")
    ap.add_argument("--list", action="store_true", help="list the checks and exit")
    ap.add_argument("--verbose", "-v", action="store_true", help="reasons and runtime calls for passing checks too")
    ap.add_argument("--compare", nargs="+", metavar="TAP", help="print saved TAP results side by side")
    args = ap.parse_args(argv)

    if args.compare:
        return compare(args.compare)
    load_all()
    checks = list(H.REGISTRY)
    if args.only:
        rx = re.compile(args.only)
        checks = [c for c in checks if rx.search(c.id)]
    if args.list:
        for c in checks:
            print(f"{c.id:<55} {c.level:<8} {c.text}")
        print(f"{len(checks)} checks")
        return 0
    if not args.runtime:
        ap.error("--runtime PATH is required")
    runtime = shutil.which(args.runtime) or args.runtime
    if not os.access(runtime, os.X_OK):
        ap.error(f"{args.runtime}: not an executable")
    runtime = os.path.abspath(runtime)
    if os.geteuid() != 0:
        print("conformance/suite.py: run me as root (containers need namespaces, mounts, cgroups)", file=sys.stderr)
        return 2
    if not os.access(H.busybox_bundle.BUSYBOX, os.X_OK):
        print(f"conformance/suite.py: {H.busybox_bundle.BUSYBOX} missing (install busybox-static)", file=sys.stderr)
        return 2
    jobs = max(1, min(2, args.jobs))

    H.busybox_bundle._cache_dir()  # build the rootfs cache before the reaper thread runs
    H.become_subreaper()
    os.umask(0o022)
    base_tmp = tempfile.mkdtemp(prefix=f"{H.MARK}-")
    os.chmod(base_tmp, 0o755)
    tap_out = open(args.tap, "w") if args.tap else None

    def emit(line: str) -> None:
        print(line, flush=True)
        if tap_out:
            tap_out.write(line + "\n")
            tap_out.flush()

    t0 = time.monotonic()
    emit("TAP version 13")
    emit(f"# runtime: {runtime}")
    for line in runtime_version(runtime):
        emit(f"#   {line}")
    emit(f"# host: Linux {os.uname().release}, cgroup {'v2' if H.cgroup_v2_only() else 'v1/hybrid'}")
    emit(f"1..{len(checks)}")
    outcomes: list[Outcome | None] = [None] * len(checks)
    done = threading.Condition()
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            def work(i: int) -> None:
                o = run_one(checks[i], i + 1, runtime, base_tmp, args.verbose)
                with done:
                    outcomes[i] = o
                    done.notify_all()

            for i in range(len(checks)):
                pool.submit(work, i)
            nxt = 0
            while nxt < len(checks):  # TAP in check order, as results come in
                with done:
                    while outcomes[nxt] is None:
                        done.wait()
                for line in tap_lines(nxt + 1, outcomes[nxt], args.verbose):
                    emit(line)
                nxt += 1
    finally:
        shutil.rmtree(base_tmp, ignore_errors=True)
    final = [o for o in outcomes if o is not None]
    emit(f"# {len(final)} checks in {time.monotonic() - t0:.1f}s")
    for what in leftovers():
        emit(f"# left behind: {what}")
    if tap_out:
        tap_out.close()
    print()
    if args.table:
        for row in check_table(final):
            print(row)
        print()
    for row in summary_table(final):
        print(row)
    print()
    p = sum(o.status == "pass" for o in final)
    f = sum(o.status == "fail" for o in final)
    s = sum(o.status == "skip" for o in final)
    print(f"{p} passed, {f} failed" + (f", {s} skipped" if s else ""))
    return 1 if f else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
