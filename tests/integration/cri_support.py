"""Helpers for tests/integration/test_cri.py and tests/bench/cri.py: containerd 1.6 with its CRI
plugin, driven the way kubelet drives it, over gRPC (grpcio), with ocirun and runc as runtime
handlers.

- `load_api(dir)`: generates the CRI v1 stubs from tests/integration/cri/runtime_v1.proto with
  grpc_tools into `dir` and imports them (`api.pb`, `api.grpc`).
- `oci_archive(...)`: an OCI image layout tar of a local root file system (no registry).
- `CriDaemon`: a private containerd (scripts/setup-integration's DIR/cri/containerd.toml) run
  inside a network namespace of its own (`nsenter --net`, so that only the network is private:
  mounts and cgroups stay the host's), the pause and busybox images imported with
  `ctr -n k8s.io images import`, and a `Cri` client on its socket.
- `Cri`: thin wrappers over RuntimeService calls, kubelet-like pod and container configs.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PROTO = HERE / "cri" / "runtime_v1.proto"
PAUSE_IMAGE = "localhost/ocitest-pause:latest"  # scripts/setup-integration's sandbox_image
BUSYBOX_IMAGE = "localhost/ocitest-cri-busybox:latest"
NAMESPACE = "k8s.io"
HANDLERS = ("runc", "ocirun")
RUNC = "/usr/sbin/runc"
OCIRUN = "/usr/local/bin/ocirun"  # scripts/setup-integration's BinaryName for the ocirun handler
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TOOLS = ("containerd", "ctr", "containerd-shim-runc-v2", "nsenter", "ip")
CNI_PLUGINS = ("bridge", "host-local", "loopback")
CGROOT = Path("/sys/fs/cgroup")


def hierarchies() -> list[Path]:
    """Every cgroup mount under /sys/fs/cgroup (not the cpu -> cpu,cpuacct links)."""
    if (CGROOT / "cgroup.controllers").exists():
        return [CGROOT]
    return [p for p in sorted(CGROOT.iterdir()) if p.is_dir() and not p.is_symlink()]


def kubepods_present() -> dict[Path, bool]:
    """Which hierarchies have a /kubepods before containerd makes the pods' parents there."""
    return {h: (h / "kubepods").exists() for h in hierarchies()}


def remove_new_kubepods(before: dict[Path, bool]) -> None:
    """Remove the (empty) /kubepods parents from the hierarchies that had none before."""
    for h, existed in before.items():
        if not existed:
            for rel in ("kubepods/besteffort", "kubepods"):
                try:
                    os.rmdir(h / rel)
                except OSError:
                    pass


def shim_socket(address: Path, ident: str) -> str:
    """Where containerd 1.6 puts the runc shim's socket for a task: /run/containerd/s/ and the
    sha256 of "<containerd address>/<namespace>/<id>". A shim that is killed leaves it behind."""
    return "/run/containerd/s/" + hashlib.sha256(os.path.join(str(address), NAMESPACE, ident).encode()).hexdigest()


def missing_tools() -> list[str]:
    """What the CRI tests need and this machine lacks (for skip reasons)."""
    out = [t for t in TOOLS if shutil.which(t) is None]
    out += [f"/usr/lib/cni/{p}" for p in CNI_PLUGINS if not os.access(f"/usr/lib/cni/{p}", os.X_OK)]
    for mod in ("grpc", "grpc_tools.protoc"):
        try:
            importlib.import_module(mod)
        except ImportError:
            out.append(f"python module {mod} (pip: grpcio, grpcio-tools)")
    return out


class Api:
    def __init__(self, pb, grpc_mod):
        self.pb = pb
        self.grpc = grpc_mod


def load_api(out_dir: Path) -> Api:
    """Generate the stubs into out_dir (a fresh directory) and import them."""
    from grpc_tools import protoc
    import grpc_tools
    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    rc = protoc.main(["protoc", f"-I{PROTO.parent}", f"-I{well_known}", f"--python_out={out_dir}",
                      f"--grpc_python_out={out_dir}", str(PROTO)])
    if rc != 0:
        raise RuntimeError(f"protoc failed on {PROTO}: {rc}")
    sys.path.insert(0, str(out_dir))
    try:
        pb = importlib.import_module("runtime_v1_pb2")
        grpc_mod = importlib.import_module("runtime_v1_pb2_grpc")
    finally:
        sys.path.remove(str(out_dir))
    return Api(pb, grpc_mod)


# --- images --------------------------------------------------------------------------------

def _blob(tar: tarfile.TarFile, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest[7:]}")
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))
    return digest, len(data)


def oci_archive(path: Path, rootfs: Path, name: str, cmd: list[str], env=(PATH_ENV,)) -> Path:
    """Write an OCI image layout tar at `path`: one uncompressed layer (rootfs's contents), an
    image config with `cmd` and `env`, a manifest, and an index naming it `name` (the
    io.containerd.image.name annotation ctr's importer reads)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as t:
        for entry in sorted(os.listdir(rootfs)):
            t.add(rootfs / entry, arcname=entry)
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": list(env), "Cmd": list(cmd), "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }, sort_keys=True).encode()
    with tarfile.open(path, "w") as tar:
        layer_d, layer_n = _blob(tar, layer_bytes)
        config_d, config_n = _blob(tar, config)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d, "size": config_n},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_d, "size": layer_n}],
        }, sort_keys=True).encode()
        man_d, man_n = _blob(tar, manifest)
        index = json.dumps({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man_d, "size": man_n,
                           "platform": {"architecture": "amd64", "os": "linux"},
                           "annotations": {"io.containerd.image.name": name,
                                           "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}}],
        }, sort_keys=True).encode()
        for fname, data in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index)):
            info = tarfile.TarInfo(fname)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


def make_images(work: Path) -> list[Path]:
    """The pause image (Debian's static catatonit in pause mode, else busybox `sleep`) and the
    busybox workload image, as OCI archives under `work`."""
    sys.path.insert(0, str(REPO / "scripts"))
    import busybox_bundle
    rootfs = busybox_bundle.make_rootfs(work / "cri-rootfs")
    try:
        busybox = oci_archive(work / "cri-busybox.tar", rootfs, BUSYBOX_IMAGE, ["/bin/sh"])
        catatonit = next((p for p in ("/usr/bin/catatonit", "/usr/libexec/podman/catatonit") if os.access(p, os.X_OK)), None)
        if catatonit:
            pause_root = work / "cri-pause-rootfs"
            shutil.rmtree(pause_root, ignore_errors=True)
            pause_root.mkdir()
            shutil.copy2(catatonit, pause_root / "pause")
            for d in ("dev", "proc", "sys", "etc"):
                (pause_root / d).mkdir()
            pause = oci_archive(work / "cri-pause.tar", pause_root, PAUSE_IMAGE, ["/pause", "-P"], env=())
            shutil.rmtree(pause_root)
        else:
            pause = oci_archive(work / "cri-pause.tar", rootfs, PAUSE_IMAGE, ["/bin/sleep", "2147483647"])
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return [pause, busybox]


# --- the daemon ----------------------------------------------------------------------------

def _run(argv, timeout=60, check=True):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


class CriDaemon:
    """containerd with the CRI plugin, on DIR/cri (scripts/setup-integration --config-only DIR),
    in the network namespace /run/netns/<netns>."""

    def __init__(self, d: Path, netns: str, api: Api):
        self.dir = d / "cri"
        self.config = self.dir / "containerd.toml"
        # $OCIRUN_INTEGRATION_RUNTIME (integ_support.RUNTIME) is the ocirun handler's binary, as
        # for the other integration tests: a copy of the config with that BinaryName.
        runtime = os.environ.get("OCIRUN_INTEGRATION_RUNTIME", OCIRUN)
        if runtime != OCIRUN:
            text = self.config.read_text().replace(f'BinaryName = "{OCIRUN}"', f'BinaryName = "{runtime}"')
            self.config = self.dir / "containerd-runtime.toml"
            self.config.write_text(text)
        self.ocirun = runtime
        self.socket = self.dir / "containerd.sock"
        self.netns = netns
        self.netns_path = Path(f"/run/netns/{netns}")
        self.api = api
        self.proc: subprocess.Popen | None = None
        self.log_path = self.dir / "containerd.log"
        self.client: Cri | None = None

    def runc_root(self, handler: str) -> Path:
        return self.dir / "runc-root" / handler / NAMESPACE

    def bundle(self, cid: str) -> Path:
        return self.dir / "state/io.containerd.runtime.v2.task" / NAMESPACE / cid

    def make_netns(self) -> None:
        if not self.netns_path.exists():
            _run(["ip", "netns", "add", self.netns])
        _run(["ip", "-n", self.netns, "link", "set", "lo", "up"])

    def delete_netns(self) -> None:
        if self.netns_path.exists():
            _run(["ip", "netns", "delete", self.netns], check=False)

    def start(self, timeout=30.0) -> None:
        import grpc
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(["nsenter", f"--net={self.netns_path}", "containerd", "--config", str(self.config)],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        end = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"containerd exited {self.proc.returncode}: {self.log_tail()}")
            if self.socket.exists():
                try:
                    if self.client is None:
                        self.client = Cri(self.api, f"unix://{self.socket}")
                    st = self.client.rt.Status(self.api.pb.StatusRequest(), timeout=5)
                    conds = {c.type: c.status for c in st.status.conditions}
                    if conds.get("RuntimeReady") and conds.get("NetworkReady"):
                        return
                except grpc.RpcError:
                    pass
            if time.monotonic() > end:
                raise AssertionError(f"containerd's CRI not ready after {timeout}s: {self.log_tail()}")
            time.sleep(0.2)

    @contextlib.contextmanager
    def serving(self, images_dir: Path, force_remove_pod, timeout=30.0):
        """Started, in its network namespace, with the test images imported. At the end every pod
        left is removed (`force_remove_pod(daemon, pod_id)`, for when CRI alone can't), then the
        images, and the daemon is shut down."""
        self.make_netns()
        try:
            self.start(timeout=timeout)
            self.import_images(make_images(images_dir))
            yield self
        finally:
            try:
                if self.proc and self.proc.poll() is None and self.client:
                    for p in self.client.pods():
                        force_remove_pod(self, p.id)
                    for img in (BUSYBOX_IMAGE, PAUSE_IMAGE):
                        self.ctr("images", "rm", img, check=False)
            finally:
                self.shut_down()

    def shut_down(self) -> None:
        """Stop containerd, close the client and remove the network namespace."""
        self.stop()
        if self.client:
            self.client.close()
        self.delete_netns()

    def stop(self) -> None:
        """SIGTERM containerd (its shims, and so the containers, go on running)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def ctr(self, *args, timeout=120, check=True):
        return _run(["ctr", "--address", str(self.socket), "--namespace", NAMESPACE, *map(str, args)],
                    timeout=timeout, check=check)

    def import_images(self, archives) -> None:
        for a in archives:
            self.ctr("images", "import", a)

    def log_tail(self, n=3000) -> str:
        try:
            return self.log_path.read_text()[-n:]
        except OSError:
            return ""


# --- the client ----------------------------------------------------------------------------

class Cri:
    def __init__(self, api: Api, target: str):
        import grpc
        self.api = api
        self.pb = api.pb
        self.channel = grpc.insecure_channel(target)
        self.rt = api.grpc.RuntimeServiceStub(self.channel)
        self.img = api.grpc.ImageServiceStub(self.channel)

    # kubelet's shapes -------------------------------------------------------------------

    def pod_config(self, name: str, *, log_dir: Path, cgroup_parent: str, uid: str, host_network=False,
                   hostname=None, pid=None):
        """kubelet's PodSandboxConfig; pid: CONTAINER by default (as kubelet sends it), POD for
        shareProcessNamespace, NODE for hostPID."""
        pb = self.pb
        ns = pb.NamespaceOption(network=pb.NODE if host_network else pb.POD,
                                pid=pb.CONTAINER if pid is None else pid, ipc=pb.POD)
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace="ocitest", attempt=0),
            hostname="" if host_network else (hostname or name),
            log_directory=str(log_dir),
            dns_config=pb.DNSConfig(servers=["10.250.77.1"], searches=["ocitest.svc"]),
            labels={"io.kubernetes.pod.name": name, "io.kubernetes.pod.uid": uid},
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=cgroup_parent,
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=ns,
                    seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault))),
        )

    def container_config(self, name: str, args, *, host_network=False, resources=None, envs=None, pid=None):
        pb = self.pb
        ns = pb.NamespaceOption(network=pb.NODE if host_network else pb.POD,
                                pid=pb.CONTAINER if pid is None else pid, ipc=pb.POD)
        return pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name, attempt=0),
            image=pb.ImageSpec(image=BUSYBOX_IMAGE),
            command=list(args[:1]), args=list(args[1:]),
            envs=[pb.KeyValue(key=k, value=v) for k, v in (envs or {}).items()],
            labels={"io.kubernetes.container.name": name},
            log_path=f"{name}/0.log",
            linux=pb.LinuxContainerConfig(
                resources=resources or pb.LinuxContainerResources(cpu_shares=2, oom_score_adj=1000),
                security_context=pb.LinuxContainerSecurityContext(
                    namespace_options=ns,
                    seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault),
                    masked_paths=["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
                    readonly_paths=["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"])),
        )

    # calls ------------------------------------------------------------------------------

    def run_pod(self, config, handler: str, timeout=60) -> str:
        return self.rt.RunPodSandbox(self.pb.RunPodSandboxRequest(config=config, runtime_handler=handler),
                                     timeout=timeout).pod_sandbox_id

    def create(self, pod_id: str, config, pod_config, timeout=60) -> str:
        return self.rt.CreateContainer(self.pb.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=config, sandbox_config=pod_config), timeout=timeout).container_id

    def start(self, cid: str, timeout=60) -> None:
        self.rt.StartContainer(self.pb.StartContainerRequest(container_id=cid), timeout=timeout)

    def stop(self, cid: str, grace=0, timeout=None) -> None:
        self.rt.StopContainer(self.pb.StopContainerRequest(container_id=cid, timeout=grace),
                              timeout=timeout or grace + 20)

    def remove(self, cid: str, timeout=60) -> None:
        self.rt.RemoveContainer(self.pb.RemoveContainerRequest(container_id=cid), timeout=timeout)

    def stop_pod(self, pod_id: str, timeout=30) -> None:
        self.rt.StopPodSandbox(self.pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=timeout)

    def remove_pod(self, pod_id: str, timeout=60) -> None:
        self.rt.RemovePodSandbox(self.pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=timeout)

    def status(self, cid: str, verbose=False):
        return self.rt.ContainerStatus(self.pb.ContainerStatusRequest(container_id=cid, verbose=verbose), timeout=30)

    def pod_status(self, pod_id: str, verbose=False):
        return self.rt.PodSandboxStatus(self.pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=verbose),
                                        timeout=30)

    def pid(self, cid: str) -> int:
        return int(json.loads(self.status(cid, verbose=True).info["info"])["pid"])

    def pod_pid(self, pod_id: str) -> int:
        return int(json.loads(self.pod_status(pod_id, verbose=True).info["info"])["pid"])

    def exec_sync(self, cid: str, cmd, timeout=0, rpc_timeout=60):
        return self.rt.ExecSync(self.pb.ExecSyncRequest(container_id=cid, cmd=list(cmd), timeout=timeout),
                                timeout=rpc_timeout)

    def pods(self) -> list:
        return list(self.rt.ListPodSandbox(self.pb.ListPodSandboxRequest(), timeout=30).items)

    def containers(self, pod_id: str = "") -> list:
        f = self.pb.ContainerFilter(pod_sandbox_id=pod_id)
        return list(self.rt.ListContainers(self.pb.ListContainersRequest(filter=f), timeout=30).containers)

    def close(self) -> None:
        self.channel.close()


def new_uid() -> str:
    return str(uuid.uuid4())
