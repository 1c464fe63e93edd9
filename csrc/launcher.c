/* The `ocirun` command: runs ocirun/__main__.py with Python in isolated mode and without the
 * site scan (-I -S).
 *
 * Every command pays the interpreter's start-up, and the site scan (site.py, the .pth files of
 * the environment) is about a third of it. A `#!python -IS` script loses its flags when pip
 * installs it (pip rewrites the whole `#!python` line), so the command is this small program,
 * which pip copies as it is. It finds the environment it was installed into from its own
 * location (/proc/self/exe: symlinks to it, such as /usr/local/bin/ocirun, are followed): the
 * package in PREFIX/lib/pythonX.Y/site-packages (or dist-packages, Debian's system pip), and
 * PREFIX/bin/python3, or the interpreter it was built for where there is none.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if !defined(PYTHON) || !defined(PYVER)
#error "build with -DPYTHON=\"/path/to/python3.X\" -DPYVER=\"3.X\" (setup.py does)"
#endif

int main(int argc, char **argv)
{
    char prefix[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", prefix, sizeof prefix - 1);
    if (n < 0) {
        fprintf(stderr, "ocirun: read /proc/self/exe: %s\n", strerror(errno));
        return 1;
    }
    prefix[n] = 0;
    for (int i = 0; i < 2; i++)  /* PREFIX/bin/ocirun -> PREFIX */
        *strrchr(prefix, '/') = 0;
    char python[PATH_MAX + 16], script[PATH_MAX + 64];
    snprintf(python, sizeof python, "%s/bin/python3", prefix);
    if (access(python, X_OK) != 0)
        snprintf(python, sizeof python, "%s", PYTHON);
    snprintf(script, sizeof script, "%s/lib/python" PYVER "/site-packages/ocirun/__main__.py", prefix);
    if (access(script, R_OK) != 0)
        snprintf(script, sizeof script, "%s/lib/python" PYVER "/dist-packages/ocirun/__main__.py", prefix);
    char **args = calloc((size_t)argc + 3, sizeof *args);
    if (!args)
        return 1;
    args[0] = python;
    args[1] = "-IS";
    args[2] = script;
    memcpy(args + 3, argv + 1, (size_t)(argc - 1) * sizeof *args);
    execv(python, args);
    fprintf(stderr, "ocirun: run %s: %s\n", python, strerror(errno));
    return 127;
}
