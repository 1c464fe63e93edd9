/* The container init's diet: once the init has done everything that needs the runtime's memory,
 * it keeps a copy of what it still needs of the plan and unmaps the rest of what it inherited
 * from the Python process that cloned it (csrc/shrink.c, docs/architecture.md).
 *
 * This header is read twice: by the C compiler, and by cffi's cdef (csrc/build.py), so it
 * holds only plain declarations: no #include, no macros, no inline code.
 */

/* Only for the container init, never for a process that still runs Python: called between the
 * signal reset and the seccomp install, with procfd an O_PATH fd of a procfs that shows the
 * caller (the host's /proc the init keeps) and exe the program execve will run.
 *
 * When the plan waits on an exec fifo (create), copies into one fresh mapping the plan fields
 * the init still reads after this point (argv, envp, cwd, groups, the capability and seccomp
 * fields, the startContainer hooks and their state, the protocol fields) and *exe, then unmaps
 * every mapping but that copy, the stack, the thread's TLS, this module, libc, the dynamic
 * linker and the kernel's [vdso]/[vvar]/[vsyscall]. Returns the copy and points *exe into it;
 * the pointer fields the init no longer reads (namespaces, rootfs operations, hostname,
 * rlimits, attrs) are NULL there. From then on the caller must not allocate (no malloc, no
 * stdio: dprintf and printf allocate), and may call only into this module and libc.
 *
 * Without an exec fifo (exec, which execs at once), or when something it needs is missing
 * (an allocation, the maps file), returns plan as it is and unmaps nothing. */
const struct oci_plan *oci_shrink_init(const struct oci_plan *plan, int procfd, const char **exe);
