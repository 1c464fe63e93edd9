/* bpf(2) for the cgroup v2 device filter: see bpf.h. glibc has no wrapper for bpf(2). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>

#include "bpf.h"

static int sys_bpf(int cmd, union bpf_attr *attr)
{
    long r = syscall(SYS_bpf, cmd, attr, sizeof(*attr));
    return r < 0 ? -errno : (int)r;
}

int oci_bpf_prog_load(unsigned int prog_type, const void *insns, unsigned int insn_cnt,
                      const char *license, char *log_buf, unsigned int log_size)
{
    union bpf_attr attr;
    int r;

    memset(&attr, 0, sizeof(attr));
    attr.prog_type = prog_type;
    attr.insns = (uint64_t)(uintptr_t)insns;
    attr.insn_cnt = insn_cnt;
    attr.license = (uint64_t)(uintptr_t)license;
    r = sys_bpf(BPF_PROG_LOAD, &attr);
    if (r == -EACCES && log_buf && log_size) {
        /* Rejected by the verifier: load again with its log, for the error message. */
        log_buf[0] = '\0';
        attr.log_level = 1;
        attr.log_buf = (uint64_t)(uintptr_t)log_buf;
        attr.log_size = log_size;
        r = sys_bpf(BPF_PROG_LOAD, &attr);
        if (r >= 0) {
            close(r);
            r = -EACCES;
        }
    }
    return r;
}

int oci_bpf_prog_attach(int prog_fd, int target_fd, unsigned int attach_type, unsigned int flags,
                        int replace_fd)
{
    union bpf_attr attr;

    memset(&attr, 0, sizeof(attr));
    attr.target_fd = target_fd;
    attr.attach_bpf_fd = prog_fd;
    attr.attach_type = attach_type;
    attr.attach_flags = flags;
    if (replace_fd >= 0)
        attr.replace_bpf_fd = replace_fd;
    return sys_bpf(BPF_PROG_ATTACH, &attr);
}

int oci_bpf_prog_detach(int prog_fd, int target_fd, unsigned int attach_type)
{
    union bpf_attr attr;

    memset(&attr, 0, sizeof(attr));
    attr.target_fd = target_fd;
    attr.attach_bpf_fd = prog_fd < 0 ? 0 : prog_fd;
    attr.attach_type = attach_type;
    return sys_bpf(BPF_PROG_DETACH, &attr);
}

int oci_bpf_prog_query(int target_fd, unsigned int attach_type, unsigned int *attach_flags,
                       unsigned int *prog_ids, unsigned int *prog_cnt)
{
    union bpf_attr attr;
    int r;

    memset(&attr, 0, sizeof(attr));
    attr.query.target_fd = target_fd;
    attr.query.attach_type = attach_type;
    attr.query.prog_ids = (uint64_t)(uintptr_t)prog_ids;
    attr.query.prog_cnt = *prog_cnt;
    r = sys_bpf(BPF_PROG_QUERY, &attr);
    if (r == 0 || r == -ENOSPC) {
        *prog_cnt = attr.query.prog_cnt;
        if (attach_flags)
            *attach_flags = attr.query.attach_flags;
    }
    return r;
}

int oci_bpf_prog_get_fd_by_id(unsigned int prog_id)
{
    union bpf_attr attr;

    memset(&attr, 0, sizeof(attr));
    attr.prog_id = prog_id;
    return sys_bpf(BPF_PROG_GET_FD_BY_ID, &attr);
}
