/* The container's processes never run the host's interpreter (csrc/sealexe.c).
 *
 * Read twice: by the C compiler and by cffi's cdef (csrc/build.py): plain declarations only.
 */

/* In the runtime, before it clones: notes what oci_seal_exe will need of the process's memory
 * layout (the main program's extent, the mm fields of /proc/self/stat). Returns 0 or -errno. */
int oci_exe_layout(void);

/* In a child, once nothing it (or a child it clones) still runs needs the interpreter's binary:
 * unmaps that binary and makes a sealed, empty memfd the process's executable, so that
 * /proc/self/exe, /proc/PID/exe and map_files lead to no host file; a clone inherits it. From
 * then on: no malloc, no stdio, no environ (as after oci_shrink_init). Needs CAP_SYS_ADMIN (or
 * CAP_CHECKPOINT_RESTORE) in the current user namespace: call it before the credentials
 * change. Returns 0 (at once when already done) or -errno; on failure the caller must not
 * execve. */
int oci_seal_exe(void);
