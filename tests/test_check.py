"""`ocirun check` and `ocirun.check()`: every problem of a config.json at once, with its place."""
import json

import ocirun
from ocirun.default_spec import default_config


def _broken() -> dict:
    cfg = default_config(args=["true"])
    cfg["process"]["args"] = []
    cfg["process"]["user"]["uid"] = -1
    cfg["mounts"][0]["destination"] = 5
    return cfg


def test_every_problem_with_its_path():
    found = ocirun.check(_broken())
    assert [p for p, _ in found] == ["mounts[0].destination", "process.args", "process.user.uid"], found
    assert all(msg for _, msg in found)


def test_a_good_config_has_none_and_the_semantic_checks_follow(tmp_path):
    cfg = default_config(args=["true"])
    assert ocirun.check(cfg) == []
    # only with the bundle: its rootfs must exist (config.py's check, after the schema's)
    assert ocirun.check(cfg, str(tmp_path)) == [("root.path", f"rootfs {tmp_path}/rootfs does not exist or is not a directory")]
    cfg["process"]["user"]["uid"] = 1.0  # JSON Schema takes 1.0 as an integer; create doesn't
    assert [p for p, _ in ocirun.check(cfg)] == ["process.user.uid"]


def test_the_command(rt, tmp_path):
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "config.json").write_text(json.dumps(_broken()))
    r = rt("check", "--bundle", tmp_path, check=False)
    assert r.returncode == 1
    assert r.stdout.splitlines() == [f"{tmp_path}/config.json: {p}" for p in (
        "mounts[0].destination: 5 is not of type 'string'", "process.args: [] should be non-empty",
        "process.user.uid: -1 is less than the minimum of 0")], r.stdout
    (tmp_path / "config.json").write_text(json.dumps(default_config(args=["true"])))
    r = rt("check", "--bundle", tmp_path)
    assert r.stdout == ""
