"""The command's entry point: run as a file by the `ocirun` launcher (csrc/launcher.c, with
`python -I -S`), or as `python -m ocirun`."""
import posix
import sys

if __name__ == "__main__" and not __package__:
    # Run as a file, isolated (no script directory on sys.path): the package is found from
    # the directory above this one.
    sys.path.append(__file__.rpartition("/")[0].rpartition("/")[0])


def main() -> None:
    try:
        from ocirun.cli import main as cli_main

        code = cli_main()  # flushes stdout, and turns every failure into its message and status
    except BaseException as e:  # what escapes that (a broken install, a second ^C): still a message
        code = 130 if isinstance(e, KeyboardInterrupt) else 1
        try:
            posix.write(2, f"ocirun: {type(e).__name__}: {e}\n".encode(errors="backslashreplace"))
        except OSError:
            pass
    # Exit without the interpreter's shutdown (about 2 ms): ocirun holds nothing that needs it.
    posix._exit(code)


if __name__ == "__main__":
    main()
