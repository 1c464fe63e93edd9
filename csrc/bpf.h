/* Thin wrappers around bpf(2) for the cgroup v2 device filter (ocirun/cgroups/bpf.py).
 *
 * Like trampoline.h, this header is read by the C compiler and by cffi's cdef: plain
 * declarations only. Every function returns what the syscall returns (a new fd, or 0), or -errno.
 */

/* BPF_PROG_LOAD: insns is insn_cnt struct bpf_insn (8 bytes each). The verifier's log goes to
 * log_buf (log_size bytes, may be NULL/0). */
int oci_bpf_prog_load(unsigned int prog_type, const void *insns, unsigned int insn_cnt,
                      const char *license, char *log_buf, unsigned int log_size);

/* BPF_PROG_ATTACH of prog_fd to target_fd (a cgroup directory) for attach_type, with flags
 * (BPF_F_ALLOW_MULTI, BPF_F_REPLACE); replace_fd is the program to replace, or -1. */
int oci_bpf_prog_attach(int prog_fd, int target_fd, unsigned int attach_type, unsigned int flags,
                        int replace_fd);

/* BPF_PROG_DETACH of prog_fd (or, with -1, of the single non-multi program) from target_fd. */
int oci_bpf_prog_detach(int prog_fd, int target_fd, unsigned int attach_type);

/* BPF_PROG_QUERY: ids of the programs attached directly to target_fd. *prog_cnt is the room in
 * prog_ids on entry and the number attached on return; *attach_flags gets the attach flags. */
int oci_bpf_prog_query(int target_fd, unsigned int attach_type, unsigned int *attach_flags,
                       unsigned int *prog_ids, unsigned int *prog_cnt);

/* BPF_PROG_GET_FD_BY_ID: an fd of the loaded program with that id. */
int oci_bpf_prog_get_fd_by_id(unsigned int prog_id);
