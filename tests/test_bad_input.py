"""What bad input gets: a non-zero exit, one clear error line on stderr naming the field, file
or container at fault, and nothing left behind (the autouse leak guard checks host mounts,
cgroups, processes, fifos and state directories after every test here).

Where runc's wording differs from a reasonable message, the checks accept both (e.g. the field
name appearing anywhere in the line); where runc behaves differently from what issue 2 asks,
the test says so in a comment and fails against runc.
"""
import json

import pytest

SLEEP = ["sleep", "1000"]


def _assert_gone(rt, cid):
    r = rt("state", cid, check=False)
    assert r.returncode != 0 and "does not exist" in r.stderr, f"{cid} left behind: {r.stdout}"


# --- create: the bundle and config.json ------------------------------------------------------

def test_missing_bundle(rt, tmp_path, unique_id):
    missing = tmp_path / "no-such-bundle"
    rt.expect_error("create", "--bundle", missing, unique_id, mentions=[str(missing)])
    _assert_gone(rt, unique_id)


def test_missing_config_json(rt, tmp_path, unique_id):
    rt.expect_error("create", "--bundle", tmp_path, unique_id, mentions=["config.json"])
    _assert_gone(rt, unique_id)


@pytest.mark.parametrize("text", ['{"ociVersion": ', "not json at all", ""])
def test_invalid_json(rt, bundle, unique_id, text):
    # runc says only "unexpected EOF" / "invalid character ...", without naming config.json;
    # issue 2 asks for the file to be named. Fails against runc.
    b = bundle(["true"])
    (b / "config.json").write_text(text)
    rt.expect_error("create", "--bundle", b, unique_id, mentions=["config.json"])
    _assert_gone(rt, unique_id)


@pytest.mark.parametrize("path, value, mention", [
    ("process.args", "not-a-list", "process.args"),
    ("process.user.uid", "zero", "process.user.uid"),
    ("process.cwd", 5, "process.cwd"),
    ("root.path", 5, "root.path"),
    ("hostname", ["a"], "hostname"),
])
def test_schema_violation_names_the_json_path(rt, bundle, unique_id, path, value, mention):
    def put(cfg):
        *parents, last = path.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        node[last] = value
    rt.expect_error("create", "--bundle", bundle(["true"], put), unique_id, mentions=[mention])
    _assert_gone(rt, unique_id)


@pytest.mark.parametrize("field", ["root", "process"])
def test_missing_required_section(rt, bundle, unique_id, field):
    b = bundle(["true"], lambda c: c.pop(field) and None)
    rt.expect_error("create", "--bundle", b, unique_id, mentions=[field])
    _assert_gone(rt, unique_id)


def test_unknown_namespace_type(rt, bundle, unique_id):
    b = bundle(["true"], lambda c: c["linux"]["namespaces"].append({"type": "bogusns"}))
    rt.expect_error("create", "--bundle", b, unique_id, mentions=["bogusns"])
    _assert_gone(rt, unique_id)


def test_namespace_path_that_does_not_exist(rt, bundle, unique_id, tmp_path):
    missing = str(tmp_path / "no-such-ns")
    b = bundle(["true"], lambda c: c["linux"]["namespaces"].__setitem__(
        1, {"type": "network", "path": missing}))
    rt.expect_error("create", "--bundle", b, unique_id, mentions=[missing])
    _assert_gone(rt, unique_id)


def test_user_namespace_without_mappings(rt, bundle, unique_id):
    # none at all maps ocirun's own ids (tests/test_peer_behaviour.py); one of the two is an error
    def uid_only(c):
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
    b = bundle(["true"], uid_only)
    rt.expect_error("create", "--bundle", b, unique_id, mentions=["mapping"])
    _assert_gone(rt, unique_id)


def test_missing_rootfs(rt, bundle, unique_id):
    import shutil
    b = bundle(["true"])
    shutil.rmtree(b / "rootfs")
    rt.expect_error("create", "--bundle", b, unique_id, mentions=["rootfs"])
    _assert_gone(rt, unique_id)


def test_empty_args(rt, bundle, unique_id):
    b = bundle(["true"], process={"args": []})
    rt.expect_error("create", "--bundle", b, unique_id, mentions=["args"])
    _assert_gone(rt, unique_id)


def test_relative_cwd(rt, bundle, unique_id):
    b = bundle(["true"], process={"cwd": "relative/dir"})
    rt.expect_error("create", "--bundle", b, unique_id, mentions=["cwd"])
    _assert_gone(rt, unique_id)


def test_relative_mount_destination(rt, bundle, unique_id):
    # runc 1.1.5 accepts it with a deprecation warning and mounts it relative to "/";
    # issue 2 asks for an error naming the field. Fails against runc.
    b = bundle(["true"], lambda c: c["mounts"].append(
        {"destination": "relative/dir", "type": "tmpfs", "source": "tmpfs"}))
    rt.expect_error("create", "--bundle", b, unique_id, mentions=[("relative/dir", "destination")])
    _assert_gone(rt, unique_id)


def test_missing_bind_source(rt, bundle, unique_id, tmp_path):
    missing = str(tmp_path / "no-such-source")
    b = bundle(["true"], lambda c: c["mounts"].append(
        {"destination": "/mnt", "type": "bind", "source": missing, "options": ["rbind"]}))
    rt.expect_error("create", "--bundle", b, unique_id, mentions=[missing])
    _assert_gone(rt, unique_id)


def test_unknown_rlimit(rt, bundle, unique_id):
    b = bundle(["true"], process={"rlimits": [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]})
    rt.expect_error("create", "--bundle", b, unique_id, mentions=["RLIMIT_BOGUS"])
    _assert_gone(rt, unique_id)


def test_rlimit_above_the_hard_limit(rt, bundle, unique_id):
    # No CAP_SYS_RESOURCE here: raising a hard limit fails. runc names it as "rlimit type 7";
    # a good message names RLIMIT_NOFILE. Either way, the word rlimit.
    b = bundle(["true"], process={"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1048576, "hard": 1048576}]})
    rt.expect_error("create", "--bundle", b, unique_id, mentions=["rlimit"])
    _assert_gone(rt, unique_id)


@pytest.mark.parametrize("args", [["/no/such/program"], ["no-such-program-on-path"]])
def test_executable_missing_in_rootfs(rt, bundle, unique_id, args):
    """An error from `create` (as runc) or from `start`; either way it names the program and
    nothing is left once it is deleted."""
    b = bundle(args)
    r = rt("create", "--bundle", b, unique_id, check=False)
    if r.returncode != 0:
        line = r.stderr.strip()
        assert len(line.splitlines()) == 1 and args[0] in line, r.stderr
        _assert_gone(rt, unique_id)
        return
    line = rt.expect_error("start", unique_id, mentions=[args[0]])
    assert line
    rt.wait_status(unique_id, "stopped")
    rt("delete", unique_id)
    _assert_gone(rt, unique_id)


def test_invalid_container_id(rt, bundle):
    rt.expect_error("create", "--bundle", bundle(["true"]), "bad/id", mentions=[("bad/id", "id")])


# --- container ids -------------------------------------------------------------------------

def test_duplicate_id(rt, bundle, unique_id):
    first = bundle(SLEEP)
    rt("create", "--bundle", first, unique_id)
    pid = rt.state(unique_id)["pid"]
    # runc: "container with given ID already exists" (without the id); accept either
    rt.expect_error("create", "--bundle", bundle(SLEEP), unique_id, mentions=[(unique_id, "already exists")])
    st = rt.state(unique_id)  # the first one is untouched
    assert st["pid"] == pid and st["status"] == "created" and st["bundle"] == str(first)
    rt("delete", "--force", unique_id)


@pytest.mark.parametrize("cmd", [["state"], ["start"], ["kill"], ["kill", "KILL"], ["delete"]])
def test_unknown_id(rt, unique_id, cmd):
    # Callers match "does not exist"; runc does not name the id, so that part is not required.
    args = [cmd[0], unique_id, *cmd[1:]]
    rt.expect_error(*args, mentions=["does not exist"])


# --- operations in the wrong state ---------------------------------------------------------

def test_bad_signal_name(rt, bundle, unique_id):
    rt("run", "--detach", "--bundle", bundle(SLEEP), unique_id)
    rt.expect_error("kill", unique_id, "SIGBOGUS", mentions=["BOGUS"])
    assert rt.state(unique_id)["status"] == "running"
    rt("delete", "--force", unique_id)


def test_start_twice(rt, bundle, unique_id):
    rt("create", "--bundle", bundle(SLEEP), unique_id)
    rt("start", unique_id)
    rt.expect_error("start", unique_id, mentions=[(unique_id, "running", "not created", "created")])
    assert rt.state(unique_id)["status"] == "running"
    rt("delete", "--force", unique_id)


def test_start_a_stopped_container(rt, bundle, unique_id):
    rt("create", "--bundle", bundle(["true"]), unique_id)
    rt("start", unique_id)
    rt.wait_status(unique_id, "stopped")
    rt.expect_error("start", unique_id, mentions=[(unique_id, "stopped", "not created", "created")])
    rt("delete", unique_id)


def test_delete_running_without_force(rt, bundle, unique_id):
    rt("run", "--detach", "--bundle", bundle(SLEEP), unique_id)
    rt.expect_error("delete", unique_id, mentions=[unique_id, "running"])
    assert rt.state(unique_id)["status"] == "running"
    rt("delete", "--force", unique_id)
    _assert_gone(rt, unique_id)


def test_run_failure_leaves_nothing(rt, bundle, unique_id, tmp_path):
    missing = str(tmp_path / "no-such-source")
    b = bundle(["true"], lambda c: c["mounts"].append(
        {"destination": "/mnt", "type": "bind", "source": missing, "options": ["rbind"]}))
    rt.expect_error("run", "--bundle", b, unique_id, mentions=[missing])
    _assert_gone(rt, unique_id)


def test_json_log_names_the_problem(rt, bundle, unique_id, tmp_path):
    log = tmp_path / "log.json"
    b = bundle(["true"], process={"args": []})
    r = rt("--log", log, "--log-format", "json", "create", "--bundle", b, unique_id, check=False)
    assert r.returncode != 0
    last = json.loads(log.read_text().strip().splitlines()[-1])
    assert last["level"] == "error" and "args" in last["msg"] and last["time"]
    _assert_gone(rt, unique_id)
