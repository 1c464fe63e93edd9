"""A created container's init holds none of the runtime's memory (issue 7).

The init is a clone of `ocirun create`, a Python process. Before it waits for `start`, it copies
what it still needs of the plan into one fresh mapping and unmaps everything else it inherited
but libc, the dynamic linker, ocirun's own C module, its stack and its TLS (csrc/shrink.c). These
tests read the init's /proc/PID/maps, then check that what comes after the unmapping still works:
credentials, the seccomp filter, startContainer hooks, errors, execve and its failure. How much
memory that saves is tests/bench/memory.py's business, not a test's.
"""
import json
import os
import stat

import pytest

MAPPINGS_KEPT = ("libc.so", "ld-linux", "_trampoline")  # file names the init may still map


@pytest.fixture(autouse=True)
def _ocirun_only(runtime_bin):
    first = open(runtime_bin, "rb").readline()
    if not (first.startswith(b"#!") and b"python" in first):
        pytest.skip("the layout of a created init's memory is ocirun's own")


def _maps(pid: int) -> list[tuple[str, str]]:
    """(address range, name) of each mapping; the name is "" for anonymous memory."""
    rows = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split(maxsplit=5)
            rows.append((fields[0], fields[5].strip() if len(fields) > 5 else ""))
    return rows


def test_created_init_keeps_no_interpreter_memory(rt, bundle, unique_id):
    rt("create", "--bundle", bundle(["echo", "hello after start"]), unique_id)
    maps = _maps(rt.state(unique_id)["pid"])
    names = {name for _, name in maps}
    assert "[heap]" not in names, maps
    files = sorted(n for n in names if n.startswith("/"))
    foreign = [n for n in files if not os.path.basename(n).startswith(MAPPINGS_KEPT)]
    # Today's python3.11, _cffi_backend, _json, libm, the locale archive ... all gone.
    assert foreign == [], f"the created init still maps {foreign}"
    assert any(os.path.basename(n).startswith("libc.so") for n in files), files
    # pymalloc's arenas are anonymous mappings: what is left is the plan's copy, the TLS and the
    # libraries' .bss.
    anonymous = [r for r, n in maps if not n]
    assert len(anonymous) <= 8, maps

    rt("start", unique_id)
    rt.wait_status(unique_id, "stopped")
    assert rt.out(unique_id) == "hello after start\n"
    rt("delete", unique_id)


def test_what_comes_after_the_unmapping_still_works(rt, bundle, unique_id, tmp_path):
    # Everything the init does once the interpreter is unmapped: seccomp before the user switch
    # (no noNewPrivileges), groups and ids, the cwd entered again, a startContainer hook with
    # the state on stdin, execve with argv and env.
    hookdir = tmp_path / "hook"
    hookdir.mkdir()
    hookdir.chmod(0o777)  # the hook runs as the container's user
    (hookdir / "hook.sh").write_text("#!/bin/sh\ncat > /hook/state.json\n")
    (hookdir / "hook.sh").chmod(0o755)
    seccomp = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    script = 'echo "$(id -u):$(id -g):$(id -G | tr " " ,) $PWD $GREETING"; mkdir /tmp/x 2>/dev/null || echo refused'
    hook_mount = {"destination": "/hook", "type": "bind", "source": str(hookdir), "options": ["rbind", "rw"]}
    b = bundle(["sh", "-c", script], lambda cfg: cfg["mounts"].append(hook_mount),
               process={"user": {"uid": 1000, "gid": 1000, "additionalGids": [1000, 5]}, "cwd": "/tmp",
                        "env": ["PATH=/bin:/sbin:/usr/bin", "GREETING=hi"], "noNewPrivileges": False},
               linux={"seccomp": seccomp},
               hooks={"startContainer": [{"path": "/hook/hook.sh"}]})
    (b / "rootfs/tmp").chmod(0o1777)
    rt("create", "--bundle", b, unique_id)
    pid = rt.state(unique_id)["pid"]
    assert "[heap]" not in {n for _, n in _maps(pid)}
    rt("start", unique_id)
    rt.wait_status(unique_id, "stopped")
    assert rt.out(unique_id) == "1000:1000:1000,5 /tmp hi\nrefused\n"
    state = json.loads((hookdir / "state.json").read_text())
    assert (state["id"], state["pid"], state["status"]) == (unique_id, pid, "created")
    rt("delete", unique_id)


def test_an_error_after_the_unmapping_is_still_reported(rt, bundle, unique_id):
    # The cwd is entered again as the user, after the unmapping: the error must still reach
    # `create` as one line, errno text included.
    b = bundle(["true"], process={"user": {"uid": 1000, "gid": 1000}, "cwd": "/root"})
    (b / "rootfs/root").chmod(0o700)
    rt.expect_error("create", "--bundle", b, unique_id, mentions=("process.cwd", "permission denied"))
    assert not rt.exists(unique_id)


@pytest.mark.parametrize("name,shown", [("/not-a-program", "/not-a-program"),
                                        ("/not\na-program\x1b[31m", "/not\\x0aa-program\\x1b[31m")])
def test_an_execve_failure_after_start_is_still_reported(rt, bundle, unique_id, name, shown):
    """One line naming the field, the program's control characters escaped."""
    b = bundle([name])
    prog = b / f"rootfs{name}"
    prog.write_text("neither ELF nor #!\n")
    prog.chmod(prog.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    r = rt("run", "--bundle", b, unique_id, check=False)
    assert r.returncode == 127, r.stderr
    assert r.stderr == f"ocirun: process.args: exec {shown}: Exec format error\n"
