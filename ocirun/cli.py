"""The ocirun command line: runc's global flags, commands and flags, parsed by hand.

argparse alone costs more start-up time than a whole `ocirun state`; this parser is a table.
The CLI only parses and dispatches; each command's module is imported when that command runs.
"""
import _signal
import posix
import sys

from . import __version__, log
from .errors import OciError

USAGE = """usage: ocirun [global flags] COMMAND [flags] ARGS

commands:
  create   create a container from a bundle, its process waiting for `start`
  start    start the process of a created container
  state    print the state of a container as JSON
  kill     send a signal to a container's init (or, with --all, to all its processes)
  delete   delete a stopped or created container (--force: kill it first)
  run      create and start a container, in the foreground unless --detach (--keep: leave it)
  exec     run a new process in a running container
  pause    freeze every process of a container; resume thaws them
  ps       list the processes of a container (--format table|json)
  update   change the cgroup resources of a container
  events   print resource figures (--stats once, else every --interval)
  list     list containers
  spec     write a default config.json
  check    print every problem of a bundle's config.json (-b DIR), exit 1 if there is one
  features print what this build supports on this host, as JSON

global flags:
  --root DIR          state directory (default /run/ocirun; $XDG_RUNTIME_DIR/ocirun for a user)
  --log FILE          also log to FILE
  --log-format FMT    text or json
  --debug             debug messages
  --systemd-cgroup    take linux.cgroupsPath as slice:prefix:name
  --rootless VALUE    true, false or auto (rootless when not root on the host): only delegated
                      cgroups, id maps beyond the caller's own through newuidmap/newgidmap
  --version, --help
"""

# flag -> (option name, takes a value: False, True, or MANY for a repeatable flag)
MANY = 2
GLOBAL_FLAGS = {
    "--root": ("root", True), "--log": ("log", True), "--log-format": ("log_format", True),
    "--debug": ("debug", False), "--systemd-cgroup": ("systemd_cgroup", False),
    "--rootless": ("rootless", True), "--criu": ("criu", True),
    "--version": ("version", False), "-v": ("version", False),
    "--help": ("help", False), "-h": ("help", False),
}
_BUNDLE = {"--bundle": ("bundle", True), "-b": ("bundle", True)}
_CREATE = {
    **_BUNDLE, "--pid-file": ("pid_file", True), "--console-socket": ("console_socket", True),
    "--no-pivot": ("no_pivot", False), "--no-new-keyring": ("no_new_keyring", False),
    "--preserve-fds": ("preserve_fds", True),
}
UPDATE_FLAGS = ("memory", "memory-reservation", "memory-swap", "kernel-memory", "kernel-memory-tcp",
                "cpu-share", "cpu-shares", "cpu-quota", "cpu-period", "cpu-burst", "cpu-rt-runtime",
                "cpu-rt-period", "cpu-idle", "cpuset-cpus", "cpuset-mems", "pids-limit", "blkio-weight")
COMMANDS = {
    # command -> (flags, positional argument names, how many are required)
    "create": (_CREATE, ("id",), 1),
    "start": ({}, ("id",), 1),
    "state": ({}, ("id",), 1),
    "kill": ({"--all": ("all", False), "-a": ("all", False)}, ("id", "signal"), 1),
    "delete": ({"--force": ("force", False), "-f": ("force", False)}, ("id",), 1),
    "run": ({**_CREATE, "--detach": ("detach", False), "-d": ("detach", False), "--keep": ("keep", False)},
            ("id",), 1),
    "exec": ({"--process": ("process_file", True), "-p": ("process_file", True),
              "--tty": ("tty", False), "-t": ("tty", False), "--cwd": ("cwd", True),
              "--env": ("env", MANY), "-e": ("env", MANY), "--user": ("user", True), "-u": ("user", True),
              "--additional-gids": ("additional_gids", MANY), "-g": ("additional_gids", MANY),
              "--cap": ("caps", MANY), "-c": ("caps", MANY), "--no-new-privs": ("no_new_privs", False),
              "--apparmor": ("apparmor", True), "--process-label": ("process_label", True),
              "--preserve-fds": ("preserve_fds", True), "--detach": ("detach", False),
              "-d": ("detach", False), "--pid-file": ("pid_file", True),
              "--console-socket": ("console_socket", True), "--ignore-paused": ("ignore_paused", False)},
             ("id",), 1),
    "list": ({"--format": ("format", True), "-f": ("format", True), "--quiet": ("quiet", False),
              "-q": ("quiet", False)}, (), 0),
    "features": ({}, (), 0),
    "pause": ({}, ("id",), 1),
    "resume": ({}, ("id",), 1),
    "ps": ({"--format": ("format", True), "-f": ("format", True)}, ("id",), 1),
    "events": ({"--stats": ("stats", False), "--interval": ("interval", True)}, ("id",), 1),
    "update": ({"--resources": ("resources", True), "-r": ("resources", True),
                **{f"--{flag}": (flag, True) for flag in UPDATE_FLAGS}}, ("id",), 1),
    "spec": ({**_BUNDLE, "--rootless": ("rootless", False)}, (), 0),
    "check": (_BUNDLE, (), 0),
}


class UsageError(OciError):
    pass


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where ocirun is: what it made is undone as on ^C, and it says why it stopped."""


def _terminated(signum, frame):
    raise Terminated


class _Stdout:
    """Where commands print: a reader that went away (EPIPE) is a failure with a message, not silence."""

    def write(self, text: str) -> None:
        self._guard(sys.stdout.write, text)

    def flush(self) -> None:
        self._guard(sys.stdout.flush)

    @staticmethod
    def _guard(f, *args) -> None:
        try:
            f(*args)
        except OSError as e:
            raise OciError(f"write to stdout: {e.strerror}") from None


OUT = _Stdout()


def parse_flags(args: list[str], table: dict, stop_at_positional: bool) -> tuple[dict, list[str]]:
    """Parse --flag VALUE, --flag=VALUE and booleans (--flag, --flag=false) from the front of args."""
    opts: dict = {}
    rest = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i + 1:]
            break
        if not arg.startswith("-") or arg == "-":
            if stop_at_positional:
                rest += args[i:]
                break
            rest.append(arg)
            i += 1
            continue
        name, eq, value = arg.partition("=")
        if name not in table:
            raise UsageError(f"unknown flag {name}")
        dest, takes_value = table[name]
        if takes_value:
            if not eq:
                i += 1
                if i >= len(args):
                    raise UsageError(f"flag {name} needs a value")
                value = args[i]
            if takes_value == MANY:
                opts.setdefault(dest, []).append(value)
            else:
                opts[dest] = value
        else:
            if eq and value not in ("true", "false"):
                raise UsageError(f"flag {name} takes true or false, not {value!r}")
            opts[dest] = value != "false"
        i += 1
    return opts, rest


def _open_stdio() -> None:
    """A closed fd 0-2 would be taken by the first file ocirun opens, and handed on as stdio."""
    for fd in (0, 1, 2):
        try:
            posix.fstat(fd)
        except OSError:
            posix.open("/dev/null", posix.O_RDWR)  # takes the lowest free fd: this one


def _global_flags(argv: list[str]) -> tuple[dict, list[str]]:
    try:
        return parse_flags(argv, GLOBAL_FLAGS, stop_at_positional=True)
    except UsageError:
        # The error must reach the log its caller reads all the same: find --log and --log-format.
        found: dict = {}
        it = iter(argv)
        for arg in it:
            if arg == "--" or not arg.startswith("-"):
                break
            name, eq, value = arg.partition("=")
            if not eq and GLOBAL_FLAGS.get(name, (None, False))[1]:
                value = next(it, None)
            found[name] = value
        log.configure(found.get("--log"), found.get("--log-format", "text"), False)
        raise


def main(argv: list[str] | None = None) -> int:
    """Every failure ends here as one error line on stderr and in the log, and exit status 1
    (130 on ^C, 143 on SIGTERM); only `run` and `exec` exit with their process's status."""
    argv = sys.argv[1:] if argv is None else argv
    _open_stdio()
    _signal.signal(15, _terminated)
    try:
        g, rest = _global_flags(argv)
        fmt = g.get("log_format", "text")
        # first, so that every error below reaches the log (a bad format logs as text)
        log.configure(g.get("log"), fmt, g.get("debug", False))
        if fmt not in ("text", "json"):
            raise UsageError(f"--log-format must be text or json, not {fmt!r}")
        if g.get("version"):
            print(f"ocirun version {__version__}\nspec: 1.3.0", file=OUT)
            OUT.flush()
            return 0
        if g.get("help"):
            OUT.write(USAGE)
            OUT.flush()
            return 0
        if not rest:
            raise UsageError("no command given (ocirun --help lists them)")
        if "criu" in g:
            log.debug("ignoring --criu: accepted for runc compatibility")
        command, args = rest[0], rest[1:]
        if command == "exec":
            from .cgroups import warm_up

            warm_up()  # as early as can be: it overlaps a kernel wait with everything below
        if command not in COMMANDS:
            raise UsageError(f"unknown command {command!r}")
        table, names, required = COMMANDS[command]
        # exec: everything after the id is the command; ps: the arguments for ps(1)
        opts, positional = parse_flags(args, table, stop_at_positional=command in ("exec", "ps"))
        if command in ("exec", "ps") and positional:
            opts["args"], positional = positional[1:], positional[:1]
        if len(positional) < required:
            raise UsageError(f"{command} needs a container id")
        if len(positional) > len(names):
            raise UsageError(f"{command}: unexpected argument {positional[len(names)]!r}")
        opts.update(zip(names, positional))
        from .state import default_root

        root = g.get("root") or default_root()
        code = dispatch(command, root, opts, g) or 0
        OUT.flush()
        return code
    except OciError as e:
        log.error(str(e))
        return 1
    except Terminated:
        log.error("terminated")
        return 143
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception as e:  # a bug: still one clear line for the caller, the traceback with --debug
        if log.debugging():
            import traceback

            traceback.print_exc()
        log.error(f"internal error: {type(e).__name__}: {e}")
        return 1


def _create_options(opts: dict, g: dict):
    from .create import Options

    preserve = opts.get("preserve_fds", "0")
    if not str(preserve).isdigit():
        raise UsageError(f"--preserve-fds must be a number, not {preserve!r}")
    return Options(bundle=opts.get("bundle") or ".", pid_file=opts.get("pid_file"),
                   console_socket=opts.get("console_socket"), no_pivot=opts.get("no_pivot", False),
                   no_new_keyring=opts.get("no_new_keyring", False), preserve_fds=int(preserve),
                   systemd_cgroup=g.get("systemd_cgroup", False), rootless=_rootless(g))


def _rootless(g: dict) -> bool:
    from .rootless import enabled

    return enabled(g.get("rootless", "auto"))


def dispatch(command: str, root: str, opts: dict, g: dict) -> int:
    cid = opts.get("id")
    if command == "create":
        from .create import create

        create(root, cid, _create_options(opts, g))
    elif command == "run":
        from .run import run

        return run(root, cid, _create_options(opts, g), opts.get("detach", False), opts.get("keep", False))
    elif command == "exec":
        from .exec import ExecOptions, exec_process

        preserve = opts.get("preserve_fds", "0")
        if not str(preserve).isdigit():
            raise UsageError(f"--preserve-fds must be a number, not {preserve!r}")
        o = ExecOptions(process_file=opts.get("process_file"), args=opts.get("args"),
                        tty=opts.get("tty", False), cwd=opts.get("cwd"), env=opts.get("env"),
                        user=opts.get("user"), additional_gids=opts.get("additional_gids"),
                        caps=opts.get("caps"), no_new_privs=opts.get("no_new_privs", False),
                        preserve_fds=int(preserve), detach=opts.get("detach", False),
                        pid_file=opts.get("pid_file"), console_socket=opts.get("console_socket"),
                        apparmor=opts.get("apparmor"), process_label=opts.get("process_label"))
        return exec_process(root, cid, o)
    elif command == "start":
        from .lifecycle import start

        start(root, cid)
    elif command == "state":
        from . import jsonio, state

        print(jsonio.dumps(state.load(root, cid).oci_state(), indent=2), file=OUT)
    elif command == "kill":
        from . import kernel
        from .lifecycle import kill

        try:
            sig = kernel.parse_signal(opts.get("signal", "TERM"))
        except ValueError as e:
            raise UsageError(str(e)) from None
        kill(root, cid, sig, opts.get("all", False))
    elif command == "delete":
        from .lifecycle import delete

        delete(root, cid, opts.get("force", False))
    elif command == "list":
        _list(root, opts.get("format", "table"), opts.get("quiet", False))
    elif command in ("pause", "resume", "ps", "events", "update"):
        cgroup_command(command, root, cid, opts)
    elif command == "features":
        from . import jsonio
        from .features import features

        print(jsonio.dumps(features(), indent=2), file=OUT)
    elif command == "spec":
        from .default_spec import write

        write(opts.get("bundle") or ".", opts.get("rootless", False))
    elif command == "check":
        from .checker import check_bundle

        found = check_bundle(opts.get("bundle") or ".")
        for line in found:
            print(line, file=OUT)
        return 1 if found else 0
    return 0


def cgroup_command(command: str, root: str, cid: str, opts: dict) -> None:
    from . import cgroup_commands as cc
    from . import jsonio

    if command == "pause":
        cc.pause(root, cid)
    elif command == "resume":
        cc.resume(root, cid)
    elif command == "ps":
        fmt = opts.get("format", "table")
        if fmt == "json":
            print(jsonio.dumps(cc.ps(root, cid)), file=OUT)
        elif fmt == "table":
            OUT.write(cc.ps_table(root, cid, opts.get("args") or None))
        else:
            raise UsageError(f"--format must be table or json, not {fmt!r}")
    elif command == "events":
        if opts.get("stats"):
            print(jsonio.dumps(cc.events_stats(root, cid)), file=OUT)
        else:
            cc.events_stream(root, cid, cc.parse_interval(opts.get("interval", "5s")), out=OUT)
    elif "resources" in opts:
        cc.update(root, cid, cc.read_resources(opts["resources"]))
    else:
        flags = {flag: opts[flag] for flag in UPDATE_FLAGS if flag in opts}
        if not flags:
            raise UsageError("update needs --resources FILE|- or at least one resource flag")
        cc.update(root, cid, cc.resources_from_flags(flags))


def _list(root: str, fmt: str, quiet: bool) -> None:
    from . import jsonio, state

    if fmt not in ("table", "json"):
        raise UsageError(f"--format must be table or json, not {fmt!r}")
    states = []
    for cid in state.all_ids(root):
        try:
            states.append(state.load(root, cid).oci_state())
        except state.DamagedState as e:  # the others are still listed; this one is named
            log.warning(str(e))
        except OciError:
            continue  # gone meanwhile, or not a container's directory
    if quiet:
        for s in states:
            print(s["id"], file=OUT)
    elif fmt == "json":
        print(jsonio.dumps(states), file=OUT)
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]) for s in states]
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            print("   ".join(v.ljust(w) for v, w in zip(r, widths)) + "   " + r[5], file=OUT)


if __name__ == "__main__":
    sys.exit(main())
