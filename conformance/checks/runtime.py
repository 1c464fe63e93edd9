"""runtime.md: state, lifecycle, errors and the create/start/state/kill/delete operations."""
from __future__ import annotations

import json
import os
import re
import time

from ._harness import Fail, bind, cgroup_dir_of, check, hook, ns_link, read

SEMVER = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
STATUSES = ("creating", "created", "running", "stopped")


def _sleeper(ctx, secs=300, **kw):
    cfg = ctx.config(["sleep", str(secs)], **kw)
    return cfg


def _running(ctx, cfg=None) -> tuple[str, dict]:
    """A created-then-started container whose process sleeps; -> (id, state)."""
    cid = ctx.must_create(cfg or _sleeper(ctx))
    ctx.must_start(cid)
    st = ctx.wait_status(cid, "running", 5)
    if not st or st.get("status") != "running":
        raise Fail(f"container not running after start: state {st}")
    return cid, st


def _stopped(ctx) -> tuple[str, dict]:
    """A container whose process ran `true` and exited; -> (id, state)."""
    cid = ctx.must_create(ctx.config(["true"]))
    ctx.must_start(cid)
    st = ctx.wait_status(cid, "stopped", 10)
    if not st or st.get("status") != "stopped":
        raise Fail(f"container not stopped after its process exited: state {st}")
    return cid, st


def _alive(pid) -> bool:
    s = read(f"/proc/{pid}/stat")
    if s is None:
        return False
    return s[s.rfind(")") + 2:].split()[0] not in ("Z", "X")


# --- State ---------------------------------------------------------------------------------------

@check("runtime.md#state-oci-version", "MUST", "state has ociVersion, a SemVer string")
def state_oci_version(ctx):
    cid = ctx.must_create(ctx.config())
    st = ctx.must_state(cid)
    v = st.get("ociVersion")
    ctx.expect(isinstance(v, str) and SEMVER.match(v), f"ociVersion {v!r} is not a SemVer string")


@check("runtime.md#state-id", "MUST", "state's id is the id given to create")
def state_id(ctx):
    cid = ctx.must_create(ctx.config())
    st = ctx.must_state(cid)
    ctx.expect(st.get("id") == cid, f"state id {st.get('id')!r}, created as {cid!r}")


@check("runtime.md#state-status-created", "MUST", "status is `created` after create, before start")
def state_created(ctx):
    cid = ctx.must_create(ctx.config())
    st = ctx.must_state(cid)
    ctx.expect(st.get("status") == "created", f"status {st.get('status')!r} after create")


@check("runtime.md#state-status-running", "MUST", "status is `running` while the started program runs")
def state_running(ctx):
    _running(ctx)


@check("runtime.md#state-status-stopped", "MUST", "status is `stopped` once the container process has exited")
def state_stopped(ctx):
    _stopped(ctx)


@check("runtime.md#state-pid", "MUST", "pid (created and running) is the container process as seen from the runtime")
def state_pid(ctx):
    cid = ctx.must_create(_sleeper(ctx))
    st = ctx.must_state(cid)
    pid = st.get("pid")
    ctx.expect(isinstance(pid, int) and pid > 0, f"created: pid {pid!r} is not a positive integer")
    ctx.expect(_alive(pid), f"created: pid {pid} is not a live process")
    ctx.expect(ns_link(pid, "pid") != ns_link("self", "pid") or ns_link(pid, "pid_for_children"),
               f"created: pid {pid} is not in the container's pid namespace")
    ctx.must_start(cid)
    time.sleep(0.1)
    st = ctx.must_state(cid)
    pid2 = st.get("pid")
    ctx.expect(isinstance(pid2, int) and pid2 > 0, f"running: pid {pid2!r}")
    cmd = (read(f"/proc/{pid2}/cmdline") or "").split("\0")
    ctx.expect(cmd[:2] == ["sleep", "300"], f"running: pid {pid2} runs {cmd!r}, not the container's `sleep 300`")
    ctx.expect(pid2 == pid, f"pid changed from {pid} (created) to {pid2} (running)")


@check("runtime.md#state-bundle", "MUST", "bundle is the absolute path of the bundle directory")
def state_bundle(ctx):
    b = ctx.bundle(ctx.config())
    # Pass the bundle as a relative path: the state must still name it absolutely.
    cid = ctx.new_id()
    ctx.ids.append(cid)
    res = ctx.rt("create", "--bundle", b.name, cid, cwd=str(b.parent))
    if not res.ok:
        raise Fail(f"create with a relative bundle path failed: {res.brief()}")
    st = ctx.must_state(cid)
    bp = st.get("bundle")
    ctx.expect(isinstance(bp, str) and os.path.isabs(bp), f"bundle {bp!r} is not absolute")
    ctx.expect(os.path.realpath(bp) == os.path.realpath(b), f"bundle {bp!r}, expected {str(b)!r}")


@check("runtime.md#state-annotations", "MUST", "state carries the config's annotations")
def state_annotations(ctx):
    cfg = ctx.config()
    ann = {"com.example.key": "value", "org.example.empty": "", "com.example.json": '{"a": [1]}'}
    cfg["annotations"] = ann
    cid = ctx.must_create(cfg)
    st = ctx.must_state(cid)
    ctx.expect(st.get("annotations") == ann, f"annotations {st.get('annotations')!r}, config has {ann!r}")


def _schema_problems(st: dict) -> list[str]:
    bad = []
    for k in ("ociVersion", "id", "status", "bundle"):
        if not isinstance(st.get(k), str):
            bad.append(f"{k} missing or not a string")
    if st.get("status") not in STATUSES:
        bad.append(f"status {st.get('status')!r} not one of {STATUSES}")
    if "pid" in st and (not isinstance(st["pid"], int) or isinstance(st["pid"], bool) or st["pid"] < 0):
        bad.append(f"pid {st['pid']!r} is not an integer >= 0")
    if st.get("status") in ("created", "running") and not isinstance(st.get("pid"), int):
        bad.append("pid missing while created/running (REQUIRED on Linux)")
    ann = st.get("annotations")
    if ann is not None and (not isinstance(ann, dict) or not all(isinstance(v, str) for v in ann.values())):
        bad.append(f"annotations {ann!r} is not a map of strings")
    return bad


@check("runtime.md#state-schema", "MUST", "state JSON follows state-schema.json when created, running and stopped")
def state_schema(ctx):
    # The program runs until a line arrives on the fifo: the three states are seen in turn.
    d = ctx.hostdir("fifo")
    fifo = d / "in"
    os.mkfifo(fifo)
    cfg = ctx.config(["sh", "-c", "read x < /host/in"])
    cfg["mounts"].append(bind(d, "/host"))
    cid = ctx.must_create(cfg)
    problems = [f"created: {p}" for p in _schema_problems(ctx.must_state(cid))]
    ctx.must_start(cid)
    st = ctx.wait_status(cid, "running", 5) or {}
    problems += [f"running: {p}" for p in _schema_problems(st)]
    fd = _open_writer(fifo)
    if fd is not None:
        os.write(fd, b"go\n")
        os.close(fd)
    else:
        ctx.kill(cid, "KILL")
    st = ctx.wait_status(cid, "stopped", 10) or {}
    problems += [f"stopped: {p}" for p in _schema_problems(st)]
    ctx.expect(not problems, "; ".join(problems))


def _open_writer(fifo, timeout=5.0) -> int | None:
    """The write end of fifo once the container has opened it for reading (ENXIO until then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            time.sleep(0.05)
    return None


# --- Lifecycle ---------------------------------------------------------------------------------------

@check("runtime.md#lifecycle-create-no-program", "MUST NOT", "create does not run the user-specified program")
def lifecycle_create_no_program(ctx):
    out = ctx.hostdir("out")
    cfg = ctx.config(script="echo ran > /out/ran")
    cfg["mounts"].append(bind(out, "/out"))
    cid = ctx.must_create(cfg)
    time.sleep(0.5)
    ctx.expect(not (out / "ran").exists(), "the program ran during create")
    ctx.must_start(cid)
    deadline = time.monotonic() + 5
    while not (out / "ran").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    ctx.expect((out / "ran").exists(), "the program did not run after start either")


@check("runtime.md#lifecycle-config-frozen", "MUST NOT", "changes to config.json after create do not affect the container")
def lifecycle_config_frozen(ctx):
    cfg = ctx.config(["echo", "original"])
    b = ctx.bundle(cfg)
    cid = ctx.must_create(b)
    cfg2 = json.loads((b / "config.json").read_text())
    cfg2["process"]["args"] = ["echo", "changed"]
    cfg2["process"]["env"].append("CHANGED=1")
    ctx.write_config(b, cfg2)
    res = ctx.start(cid)
    if not res.ok:
        raise Fail(f"start failed: {res.brief()}")
    ctx.wait_status(cid, "stopped", 10)
    # The container's stdout is create's stdout: the file of the create call.
    outs = sorted(ctx.tmp.glob(".create*.out"))
    text = outs[-1].read_text() if outs else ""
    ctx.expect("original" in text and "changed" not in text, f"container printed {text!r} (config changed after create)")


@check("runtime.md#lifecycle-create-error", "MUST", "create fails when the environment cannot be created (unknown filesystem type)")
def lifecycle_create_error(ctx):
    cfg = ctx.config()
    cfg["mounts"].append({"destination": "/bad", "type": "no-such-fs-type", "source": "none"})
    cid, res = ctx.create(cfg)
    ctx.expect(not res.ok, "create succeeded with a mount of an unknown filesystem type")
    st = ctx.state(cid)
    ctx.expect(st is None, f"a failed create left a container behind: {st}")


@check("runtime.md#errors-no-trace", "MUST", "a failed create leaves the environment as if never attempted (id free, nothing mounted)")
def errors_no_trace(ctx):
    cfg = ctx.config()
    cfg["mounts"].append(bind(ctx.tmp / "missing-source", "/bad"))
    cid, res = ctx.create(cfg)
    ctx.expect(not res.ok, "create succeeded with a bind mount of a missing source")
    ctx.expect(ctx.state(cid) is None, "state still knows the container after the failed create")
    lst = ctx.rt("list", "--quiet")
    ctx.expect(cid not in lst.out.split(), f"list still shows {cid}")
    mounts = read("/proc/self/mountinfo") or ""
    ctx.expect(str(ctx.tmp) not in mounts, "host mounts under the bundle were left behind")
    # The id is free again.
    cid2, res2 = ctx.create(ctx.config(), cid)
    ctx.expect(res2.ok, f"the id of a failed create cannot be used again: {res2.brief()}")


def _hook_fail(ctx, kind: str):
    out = ctx.hostdir("out")
    cfg = ctx.config(script="echo ran > /out/ran; sleep 300")
    cfg["mounts"].append(bind(out, "/out"))
    cfg["hooks"] = {kind: [hook("exit 3")]}
    cid, res = ctx.create(cfg)
    if kind in ("prestart", "createRuntime", "createContainer"):
        ctx.expect(not res.ok, f"create succeeded although the {kind} hook failed")
    else:
        if not res.ok:
            raise Fail(f"create failed, although a {kind} hook belongs to start (did it run at create?): {res.brief()}")
        res = ctx.start(cid)
        ctx.expect(not res.ok, f"start succeeded although the {kind} hook failed")
    time.sleep(0.3)
    st = ctx.state(cid)
    alive = st and st.get("status") in ("created", "running")
    ctx.expect(not alive, f"the container was not stopped after the failing {kind} hook: state {st}")
    if kind != "poststart":
        ctx.expect(not (out / "ran").exists(), f"the program ran although the {kind} hook failed")


@check("runtime.md#lifecycle-prestart-fail", "MUST", "a failing prestart hook fails create and stops the container")
def lifecycle_prestart_fail(ctx):
    _hook_fail(ctx, "prestart")


@check("runtime.md#lifecycle-createRuntime-fail", "MUST", "a failing createRuntime hook fails create and stops the container")
def lifecycle_create_runtime_fail(ctx):
    _hook_fail(ctx, "createRuntime")


@check("runtime.md#lifecycle-createContainer-fail", "MUST", "a failing createContainer hook fails create and stops the container")
def lifecycle_create_container_fail(ctx):
    _hook_fail(ctx, "createContainer")


@check("runtime.md#lifecycle-startContainer-fail", "MUST", "a failing startContainer hook fails start; the program does not run")
def lifecycle_start_container_fail(ctx):
    _hook_fail(ctx, "startContainer")


@check("runtime.md#lifecycle-poststart-fail", "MUST", "a failing poststart hook fails start and stops the container")
def lifecycle_poststart_fail(ctx):
    _hook_fail(ctx, "poststart")


@check("runtime.md#lifecycle-poststop-fail-warns", "MUST", "a failing poststop hook is only a warning: delete succeeds, later hooks run")
def lifecycle_poststop_warn(ctx):
    out = ctx.hostdir("out")
    cfg = ctx.config(["true"])
    cfg["hooks"] = {"poststop": [hook("exit 3"), hook(f"echo second > {out}/second")]}
    cid = ctx.must_create(cfg)
    ctx.must_start(cid)
    ctx.wait_status(cid, "stopped", 10)
    res = ctx.delete(cid)
    ctx.expect(res.ok, f"delete failed because of the poststop hook: {res.brief()}")
    ctx.expect((out / "second").exists(), "the poststop hook after the failing one did not run")
    ctx.expect(ctx.state(cid) is None, "the container still exists after delete")


# --- Operations ---------------------------------------------------------------------------------------

@check("runtime.md#state-no-id", "MUST", "state without a container id is an error")
def state_no_id(ctx):
    res = ctx.rt("state")
    ctx.expect(res.rc != 0, f"state without an id succeeded: {res.brief()}")


@check("runtime.md#state-not-exist", "MUST", "state of a container that does not exist is an error")
def state_not_exist(ctx):
    res = ctx.rt("state", ctx.new_id("ghost"))
    ctx.expect(res.rc != 0, f"state of an unknown id succeeded: {res.brief()}")


@check("runtime.md#create-no-id", "MUST", "create without a container id is an error and creates nothing")
def create_no_id(ctx):
    b = ctx.bundle(ctx.config())
    res = ctx.rt("create", "--bundle", b)
    ctx.expect(res.rc != 0, f"create without an id succeeded: {res.brief()}")
    lst = ctx.rt("list", "--quiet")
    ctx.expect(not lst.out.strip(), f"a container exists after create without an id: {lst.out!r}")


@check("runtime.md#create-no-bundle", "MUST", "create with a bundle path that holds no bundle is an error")
def create_no_bundle(ctx):
    empty = ctx.hostdir("empty")
    cid, res = ctx.create(empty)
    ctx.expect(res.rc != 0, f"create of an empty directory succeeded: {res.brief()}")
    ctx.expect(ctx.state(cid) is None, "a container exists after the failed create")


@check("runtime.md#create-id-not-unique", "MUST", "create with an id in use fails and leaves the existing container alone")
def create_id_not_unique(ctx):
    cid = ctx.must_create(_sleeper(ctx))
    before = ctx.must_state(cid)
    out = ctx.hostdir("out")
    cfg2 = ctx.config(script="echo ran > /out/ran")
    cfg2["mounts"].append(bind(out, "/out"))
    _, res = ctx.create(cfg2, cid)
    ctx.expect(res.rc != 0, "a second create with the same id succeeded")
    after = ctx.must_state(cid)
    ctx.expect(after.get("pid") == before.get("pid") and after.get("bundle") == before.get("bundle")
               and after.get("status") == "created", f"the existing container changed: {before} -> {after}")
    ctx.must_start(cid)
    time.sleep(0.2)
    ctx.expect(not (out / "ran").exists(), "the second bundle's program ran")


@check("runtime.md#create-id-invalid", "MUST", "create with an invalid id (a path) fails and creates nothing")
def create_id_invalid(ctx):
    bad = ["../escape", "a/b"]
    for cid in bad:
        _, res = ctx.create(ctx.config(), cid)
        ctx.expect(res.rc != 0, f"create with id {cid!r} succeeded")
    ctx.expect(not (ctx.tmp / "escape").exists(), "an id with .. wrote outside the state root")
    # ctx.create remembered the ids; make sure nothing is left under them
    ctx.ids = [i for i in ctx.ids if i not in bad]


@check("runtime.md#create-applies-config", "MUST", "create applies everything but process: namespaces, hostname, cgroup before start")
def create_applies_config(ctx):
    cfg = _sleeper(ctx)
    cfg["hostname"] = "applied-at-create"
    cfg["linux"].setdefault("resources", {})["pids"] = {"limit": 77}
    cid = ctx.must_create(cfg)
    pid = ctx.must_state(cid)["pid"]
    for ns in ("mnt", "uts", "ipc", "net"):
        ctx.expect(ns_link(pid, ns) != ns_link("self", ns), f"created: the {ns} namespace is not the container's own yet")
    d = cgroup_dir_of(pid, "pids")
    val = read(os.path.join(d, "pids.max"), "").strip() if d else ""
    ctx.expect(val == "77", f"created: pids.max of the container's cgroup is {val!r}, not 77")


@check("runtime.md#create-bad-property", "MUST", "create fails, creating nothing, when a property cannot be applied (bad rlimit)")
def create_bad_property(ctx):
    cfg = ctx.config()
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 1 << 40}]  # above nr_open
    cid, res = ctx.create(cfg)
    if res.ok:
        st = ctx.state(cid)
        raise Fail(f"create succeeded with an rlimit above fs.nr_open (state {st and st.get('status')})")
    ctx.expect(ctx.state(cid) is None, "a container exists after the failed create")


@check("runtime.md#start-no-id", "MUST", "start without a container id is an error")
def start_no_id(ctx):
    res = ctx.rt("start")
    ctx.expect(res.rc != 0, f"start without an id succeeded: {res.brief()}")


@check("runtime.md#start-running", "MUST", "start of a running container fails and has no effect")
def start_running(ctx):
    cid, st = _running(ctx)
    res = ctx.start(cid)
    ctx.expect(res.rc != 0, "start of a running container succeeded")
    st2 = ctx.must_state(cid)
    ctx.expect(st2.get("status") == "running" and st2.get("pid") == st.get("pid"),
               f"the container changed: {st} -> {st2}")


@check("runtime.md#start-stopped", "MUST", "start of a stopped container fails and has no effect")
def start_stopped(ctx):
    cid, st = _stopped(ctx)
    res = ctx.start(cid)
    ctx.expect(res.rc != 0, "start of a stopped container succeeded")
    st2 = ctx.must_state(cid)
    ctx.expect(st2.get("status") == "stopped", f"status {st2.get('status')!r} after the refused start")


@check("runtime.md#start-runs-program", "MUST", "start runs the user-specified program (argv and exit observed)")
def start_runs_program(ctx):
    out = ctx.hostdir("out")
    cfg = ctx.config(["sh", "-c", 'echo "$0:$1" > /out/ran', "zero", "one"])
    cfg["mounts"].append(bind(out, "/out"))
    cid = ctx.must_create(cfg)
    ctx.must_start(cid)
    ctx.wait_status(cid, "stopped", 10)
    got = read(out / "ran", "").strip()
    ctx.expect(got == "zero:one", f"program wrote {got!r}, expected 'zero:one'")


@check("runtime.md#start-no-process", "MUST", "a config without process is an error (at create or start)")
def start_no_process(ctx):
    cfg = ctx.config()
    del cfg["process"]
    cid, res = ctx.create(cfg)
    if not res.ok:
        return "create refused it"
    res = ctx.start(cid)
    ctx.expect(res.rc != 0, "start succeeded without process")


@check("runtime.md#kill-no-id", "MUST", "kill without a container id is an error")
def kill_no_id(ctx):
    res = ctx.rt("kill")
    ctx.expect(res.rc != 0, f"kill without an id succeeded: {res.brief()}")


@check("runtime.md#kill-stopped", "MUST", "kill of a stopped container fails and has no effect")
def kill_stopped(ctx):
    cid, _ = _stopped(ctx)
    res = ctx.kill(cid, "KILL")
    ctx.expect(res.rc != 0, "kill of a stopped container succeeded")
    st = ctx.must_state(cid)
    ctx.expect(st.get("status") == "stopped", f"status {st.get('status')!r} after the refused kill")


@check("runtime.md#kill-created", "MUST", "kill of a created container sends the signal (it stops)")
def kill_created(ctx):
    cid = ctx.must_create(_sleeper(ctx))
    res = ctx.kill(cid, "KILL")
    ctx.expect(res.ok, f"kill of a created container failed: {res.brief()}")
    st = ctx.wait_status(cid, "stopped", 10)
    ctx.expect(st and st.get("status") == "stopped", f"not stopped after SIGKILL: {st}")


@check("runtime.md#kill-signal", "MUST", "kill sends the specified signal to the container process")
def kill_signal(ctx):
    out = ctx.hostdir("out")
    cfg = ctx.config(script="trap 'echo USR1 > /out/got; exit 0' USR1; echo ready > /out/ready; "
                            "while :; do sleep 0.1; done")
    cfg["mounts"].append(bind(out, "/out"))
    cid = ctx.must_create(cfg)
    ctx.must_start(cid)
    deadline = time.monotonic() + 5
    while not (out / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    res = ctx.kill(cid, "USR1")
    ctx.expect(res.ok, f"kill USR1 failed: {res.brief()}")
    deadline = time.monotonic() + 5
    while not (out / "got").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    ctx.expect((out / "got").exists(), "the container process did not receive SIGUSR1")


@check("runtime.md#delete-no-id", "MUST", "delete without a container id is an error")
def delete_no_id(ctx):
    res = ctx.rt("delete")
    ctx.expect(res.rc != 0, f"delete without an id succeeded: {res.brief()}")


@check("runtime.md#delete-running", "MUST", "delete of a running container fails and has no effect")
def delete_running(ctx):
    cid, st = _running(ctx)
    res = ctx.delete(cid)
    ctx.expect(res.rc != 0, "delete of a running container succeeded")
    st2 = ctx.state(cid)
    ctx.expect(st2 and st2.get("status") == "running" and _alive(st["pid"]),
               f"the container was affected by the refused delete: {st2}")


@check("runtime.md#delete-created", "MUST",
       "delete of a created container: the spec says fail; runc, crun and containerd's shim rely on "
       "it killing the init and removing everything (ocirun follows the callers: docs/conformance.md)")
def delete_created(ctx):
    cid = ctx.must_create(_sleeper(ctx))
    st = ctx.must_state(cid)
    res = ctx.delete(cid)
    ctx.expect(res.ok, f"delete of a created container failed: {res.brief()}")
    ctx.expect(ctx.state(cid) is None, "the container is still listed after delete")
    for _ in range(100):
        if not _alive(st["pid"]):
            break
        time.sleep(0.02)
    ctx.expect(not _alive(st["pid"]), "the created container's init still runs after delete")


@check("runtime.md#delete-resources", "MUST", "delete removes what create made: state, processes, cgroup, namespaces")
def delete_resources(ctx):
    cfg = _sleeper(ctx)
    cid = ctx.must_create(cfg)
    st = ctx.must_state(cid)
    pid = st["pid"]
    cg = cgroup_dir_of(pid, "pids") or cgroup_dir_of(pid, "memory")
    ctx.kill(cid, "KILL")
    ctx.wait_status(cid, "stopped", 10)
    res = ctx.delete(cid)
    ctx.expect(res.ok, f"delete of the stopped container failed: {res.brief()}")
    ctx.expect(ctx.state(cid) is None, "state still answers after delete")
    time.sleep(0.1)
    ctx.expect(not _alive(pid), f"the container process {pid} is still alive")
    ctx.expect(not cg or not os.path.isdir(cg), f"the container's cgroup {cg} is still there")
    left = [p for p in ctx.root.rglob("*")]
    ctx.expect(not any(cid in str(p) for p in left), f"state files left: {[str(p) for p in left]}")


@check("runtime.md#delete-keeps-foreign", "MUST NOT", "delete does not delete resources it did not create (bind sources, joined namespaces)")
def delete_keeps_foreign(ctx):
    src = ctx.hostdir("src")
    (src / "keep").write_text("keep me\n")
    holder = ctx.must_create(_sleeper(ctx))
    hpid = ctx.must_state(holder)["pid"]
    cfg = ctx.config(["true"])
    cfg["mounts"].append(bind(src, "/src"))
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "network"]
    cfg["linux"]["namespaces"].append({"type": "network", "path": f"/proc/{hpid}/ns/net"})
    netns = ns_link(hpid, "net")
    cid = ctx.must_create(cfg)
    ctx.must_start(cid)
    ctx.wait_status(cid, "stopped", 10)
    res = ctx.delete(cid)
    ctx.expect(res.ok, f"delete failed: {res.brief()}")
    ctx.expect((src / "keep").read_text() == "keep me\n", "the bind-mount source lost its content")
    ctx.expect(ns_link(hpid, "net") == netns and _alive(hpid), "the joined network namespace's owner was affected")
    st = ctx.must_state(holder)
    ctx.expect(st.get("status") == "created", f"the other container changed: {st}")


@check("runtime.md#state-pid-in-hooks", "MUST", "hooks get the pid as seen from their namespace: the host pid in runtime-namespace hooks, the container's in container-namespace hooks")
def state_pid_in_hooks(ctx):
    out = ctx.hostdir("out")
    grab = "sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p' > {d}/pid-{k}"
    cfg = ctx.config(["sleep", "300"])
    cfg["mounts"].append(bind(out, "/out"))
    cfg["hooks"] = {"createRuntime": [hook(grab.format(d=out, k="createRuntime"))],
                    "createContainer": [hook(grab.format(d=out, k="createContainer"))],
                    "startContainer": [hook(grab.format(d="/out", k="startContainer"))]}
    cid = ctx.must_create(cfg)
    pid = ctx.must_state(cid)["pid"]
    ctx.must_start(cid)
    got = {k: read(out / f"pid-{k}", "").strip() for k in ("createRuntime", "createContainer", "startContainer")}
    want = {"createRuntime": str(pid), "createContainer": "1", "startContainer": "1"}
    ctx.expect(got == want, f"pids in the hooks' state {got}, expected {want} (host pid {pid}, 1 in the container's pid namespace)")
