/* The created container's init gives back the runtime's memory (issue 7).
 *
 * The init is a raw clone of `ocirun create`, a Python process: it starts with a copy-on-write
 * view of the interpreter's heap, its pymalloc arenas, the python binary's .data and .bss and
 * every extension module it loaded. Once `create` exits, the init alone holds those pages, and
 * a created container may wait a long time for `start` with megabytes of a Python it never runs.
 *
 * So, when the init has done everything that needs the parent's memory, oci_shrink_init copies
 * what it still reads of the plan into one fresh mapping and unmaps everything else but:
 *   - that copy;
 *   - the mapping holding the stack pointer (and any mapping named [stack]);
 *   - the mappings holding the thread pointer and errno: the TCB and static TLS, where the
 *     stack protector's canary and errno live;
 *   - this module, libc and the dynamic linker, each over the whole extent of its PT_LOAD
 *     segments (found with dl_iterate_phdr, so .bss past the file is included);
 *   - the kernel's [vdso], [vvar], [vsyscall] and any other [bracketed] mapping but [heap] and
 *     named anonymous memory ([anon:...]): what can't be identified is kept.
 * The mappings are read from the host procfs fd the init kept (its own procfs may be missing),
 * a buffer at a time, without malloc: the heap may already be gone when a pass reads them.
 *
 * What the init may do afterwards: system calls, and libc functions that neither allocate nor
 * free, nor reach memory libc shares with the program. libc calls malloc and free through the
 * python binary's PLT (python takes their address, so theirs are the canonical ones), and its
 * stdio streams and environ live in the binary by copy relocation: all of that is gone. The
 * module is linked with -z now, so none of its PLT slots is bound lazily through link maps and
 * symbol tables that are gone either; libc's own lazy slots lead only to the dynamic linker's
 * dlopen, TLS and pthread functions, which the init doesn't use. vsnprintf and snprintf of
 * short texts don't allocate; dprintf does (glibc 2.36: a FILE buffer), and strerror goes
 * through gettext, which calls free(), so the init writes with write(2) and takes errno's text
 * from strerrordesc_np. ocirun may have a second thread when it clones (the cgroup warm-up):
 * libc's setresuid & co. would then visit that thread's descriptor, which is gone, so the init
 * changes credentials with raw system calls.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <link.h>
#include <stdint.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/filter.h>

#include "trampoline.h"
#include "shrink.h"

struct range {
    uintptr_t start, end;
};

/* ---- the copy of the plan ---------------------------------------------------------------- */

/* Bump allocation: run once with base NULL to measure, then into the mapping. */
struct arena {
    char *base;
    size_t used;
};

static void *take(struct arena *a, size_t n, size_t align)
{
    a->used = (a->used + align - 1) & ~(align - 1);
    void *at = a->base ? a->base + a->used : NULL;
    a->used += n ? n : 1;
    return at;
}

static const void *dup_mem(struct arena *a, const void *src, size_t n, size_t align)
{
    if (!src)
        return NULL;
    void *d = take(a, n, align);
    if (d && n)
        memcpy(d, src, n);
    return d;
}

static const char *dup_str(struct arena *a, const char *s)
{
    return s ? dup_mem(a, s, strlen(s) + 1, 1) : NULL;
}

static const char *const *dup_strv(struct arena *a, const char *const *v)
{
    if (!v)
        return NULL;
    size_t n = 0;
    while (v[n])
        n++;
    const char **d = take(a, (n + 1) * sizeof *d, _Alignof(const char *));
    for (size_t i = 0; i < n; i++) {
        const char *s = dup_str(a, v[i]);
        if (d)
            d[i] = s;
    }
    if (d)
        d[n] = NULL;
    return d;
}

/* The plan as container_init reads it from the shrink on: the credentials, the seccomp
 * program, the cwd (for messages), the startContainer hooks, argv and envp, the protocol
 * fields. What it is done with is left NULL, so that a stray use faults plainly. */
static const struct oci_plan *dup_plan(struct arena *a, const struct oci_plan *p, const char **exe)
{
    struct oci_plan *c = take(a, sizeof *c, _Alignof(struct oci_plan));
    struct oci_plan t = *p;
    t.joins = NULL;
    t.njoins = 0;
    t.timens_offsets = NULL;
    t.rootfs = NULL;
    t.ops = NULL;
    t.nops = 0;
    t.hostname = t.domainname = NULL;
    t.rlimits = NULL;
    t.nrlimits = 0;
    t.attrs = NULL;
    t.argv = dup_strv(a, p->argv);
    t.envp = dup_strv(a, p->envp);
    t.cwd = dup_str(a, p->cwd);
    t.groups = (unsigned int *)dup_mem(a, p->groups, (size_t)(p->ngroups > 0 ? p->ngroups : 0) * sizeof *p->groups,
                                       _Alignof(unsigned int));
    t.seccomp_prog = dup_mem(a, p->seccomp_prog,
                             (size_t)(p->seccomp_len > 0 ? p->seccomp_len : 0) * sizeof(struct sock_filter),
                             _Alignof(struct sock_filter));
    struct oci_hook *hooks = NULL;
    if (p->start_hooks && p->nstart_hooks > 0)
        hooks = take(a, (size_t)p->nstart_hooks * sizeof *hooks, _Alignof(struct oci_hook));
    for (int i = 0; p->start_hooks && i < p->nstart_hooks; i++) {
        struct oci_hook h = {
            .path = dup_str(a, p->start_hooks[i].path),
            .argv = dup_strv(a, p->start_hooks[i].argv),
            .envp = dup_strv(a, p->start_hooks[i].envp),
            .timeout = p->start_hooks[i].timeout,
        };
        if (hooks)
            hooks[i] = h;
    }
    t.start_hooks = hooks;
    t.state_head = dup_str(a, p->state_head);
    t.state_tail = dup_str(a, p->state_tail);
    const char *e = dup_str(a, *exe);
    if (!c)
        return NULL;
    *c = t;
    *exe = e;
    return c;
}

/* ---- what stays ------------------------------------------------------------------------- */

enum { OBJ_SELF, OBJ_LIBC, OBJ_LDSO, NOBJ };

struct object {
    uintptr_t anchor;         /* an address inside the object */
    struct range extent;      /* its PT_LOAD segments, page-aligned */
};

static uintptr_t page_size;

static uintptr_t page_down(uintptr_t a)
{
    return a & ~(page_size - 1);
}

static uintptr_t page_up(uintptr_t a)
{
    return page_down(a + page_size - 1);
}

static int find_objects(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct object *objs = arg;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t s = info->dlpi_addr + ph->p_vaddr, e = s + ph->p_memsz;
        if (s < lo)
            lo = s;
        if (e > hi)
            hi = e;
    }
    for (int k = 0; k < NOBJ; k++)
        if (lo < hi && !objs[k].extent.end && lo <= objs[k].anchor && objs[k].anchor < hi)
            objs[k].extent = (struct range){page_down(lo), page_up(hi)};
    return 0;
}

#define MAPS_BUF 16384  /* a line of /proc/self/maps is at most PATH_MAX and some 80 bytes */
#define MAX_CUTS 256
#define NANCHORS 4
#define NKEEP (NOBJ + 1)

struct shrink {
    uintptr_t anchors[NANCHORS]; /* a mapping holding one of these stays whole */
    struct range keep[NKEEP];    /* these address ranges stay, whatever mapping they are in */
    struct range cut[MAX_CUTS];  /* what this pass unmaps */
    struct range stack;          /* the mapping holding the stack pointer */
    int ncut;
    int full;                    /* cut[] filled up: unmap it and read the maps again */
};

struct mapping {
    uintptr_t start, end;
    const char *name;            /* "" for anonymous memory */
};

static const char *parse_hex(const char *s, uintptr_t *v)
{
    const char *begin = s;
    *v = 0;
    for (;; s++) {
        int d;
        if (*s >= '0' && *s <= '9')
            d = *s - '0';
        else if (*s >= 'a' && *s <= 'f')
            d = *s - 'a' + 10;
        else
            break;
        *v = *v * 16 + (uintptr_t)d;
    }
    return s == begin ? NULL : s;
}

/* "start-end perms offset dev inode   name" */
static int parse_mapping(const char *line, struct mapping *m)
{
    const char *s = parse_hex(line, &m->start);
    if (!s || *s++ != '-' || !(s = parse_hex(s, &m->end)) || *s != ' ' || m->end <= m->start)
        return -1;
    for (int field = 0; field < 4; field++) {
        while (*s == ' ')
            s++;
        if (!*s)
            return -1;
        while (*s && *s != ' ')
            s++;
    }
    while (*s == ' ')
        s++;
    m->name = s;
    return 0;
}

static int keep_whole(struct shrink *s, const struct mapping *m)
{
    if (m->start <= s->anchors[0] && s->anchors[0] < m->end)
        s->stack = (struct range){m->start, m->end};
    for (int i = 0; i < NANCHORS; i++)
        if (m->start <= s->anchors[i] && s->anchors[i] < m->end)
            return 1;
    if (m->name[0] == '[')
        return strcmp(m->name, "[heap]") != 0 && strncmp(m->name, "[anon:", 6) != 0;
    return 0;
}

static int add_cut(struct shrink *s, uintptr_t start, uintptr_t end)
{
    if (s->ncut == MAX_CUTS)
        return s->full = 1;
    s->cut[s->ncut++] = (struct range){start, end};
    return 0;
}

/* The mapping minus the keep ranges goes; returns nonzero to end the pass. */
static int collect(struct shrink *s, const struct mapping *m)
{
    if (keep_whole(s, m))
        return 0;
    uintptr_t at = m->start;
    for (int i = 0; i < NKEEP && at < m->end; i++) {
        const struct range *k = &s->keep[i];
        if (k->end <= at || k->start >= m->end)
            continue;
        if (k->start > at && add_cut(s, at, k->start))
            return 1;
        at = k->end;
    }
    return at < m->end && add_cut(s, at, m->end);
}

/* One pass over the maps file: collect() on each line until it asks to stop. */
static int read_maps(int procfd, struct shrink *s, char *buf)
{
    int fd = openat(procfd, "self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t have = 0;
    int ret = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, MAPS_BUF - 1 - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ret = n < 0 ? -1 : 0;
            break;
        }
        have += (size_t)n;
        char *line = buf, *nl;
        while ((nl = memchr(line, '\n', (size_t)(buf + have - line)))) {
            struct mapping m;
            *nl = 0;
            if (parse_mapping(line, &m) == 0 && collect(s, &m))
                goto out;
            line = nl + 1;
        }
        have -= (size_t)(line - buf);
        memmove(buf, line, have);
        if (have == MAPS_BUF - 1) {  /* a line longer than any the kernel writes */
            ret = -1;
            break;
        }
    }
out:
    close(fd);
    return ret;
}

static void sort_ranges(struct range *r, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && r[j].start < r[j - 1].start; j--) {
            struct range t = r[j];
            r[j] = r[j - 1];
            r[j - 1] = t;
        }
}

/* An address in this module's text: a static function has no PLT entry to stand in for it. */
static uintptr_t self_anchor(void)
{
    return (uintptr_t)&parse_hex;
}

const struct oci_plan *oci_shrink_init(const struct oci_plan *p, int procfd, const char **exe)
{
    if (p->exec_fifo_fd < 0 || procfd < 0)
        return p;
    page_size = (uintptr_t)getpagesize();

    /* The three objects that stay; without all three (a runtime started through ld.so by
     * hand has no AT_BASE), nothing is unmapped. */
    struct object objs[NOBJ] = {
        [OBJ_SELF] = {.anchor = self_anchor()},
        [OBJ_LIBC] = {.anchor = (uintptr_t)gnu_get_libc_version()}, /* a string in libc's .rodata */
        [OBJ_LDSO] = {.anchor = (uintptr_t)getauxval(AT_BASE)},
    };
    if (!objs[OBJ_LDSO].anchor)
        return p;
    dl_iterate_phdr(find_objects, objs);
    for (int k = 0; k < NOBJ; k++)
        if (!objs[k].extent.end)
            return p;

    struct arena measure = {0};
    dup_plan(&measure, p, exe);
    size_t copy_len = page_up(measure.used);
    size_t scratch_len = page_up(sizeof(struct shrink) + MAPS_BUF);
    char *base = mmap(NULL, copy_len + scratch_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return p;
    struct arena a = {.base = base};
    const struct oci_plan *copy = dup_plan(&a, p, exe);
    struct shrink *s = (struct shrink *)(base + copy_len);
    char *buf = (char *)(s + 1);

    uintptr_t tp = (uintptr_t)__builtin_thread_pointer();
    s->anchors[0] = (uintptr_t)__builtin_frame_address(0);
    s->anchors[1] = tp;
    s->anchors[2] = tp + 128; /* the rest of the TCB header (x86-64's canary is at tp + 0x28) */
    s->anchors[3] = (uintptr_t)&errno;
    for (int k = 0; k < NOBJ; k++)
        s->keep[k] = objs[k].extent;
    s->keep[NOBJ] = (struct range){(uintptr_t)base, (uintptr_t)base + copy_len + scratch_len};
    sort_ranges(s->keep, NKEEP);

    /* Unmapping while the file is read would shift it: collect, unmap, and read again while
     * the list filled up. Each pass only sees what is left. */
    for (int pass = 0; pass < 64; pass++) {
        s->ncut = 0;
        s->full = 0;
        if (read_maps(procfd, s, buf) < 0)
            break;
        for (int i = 0; i < s->ncut; i++)
            munmap((void *)s->cut[i].start, s->cut[i].end - s->cut[i].start);
        if (!s->full)
            break;
    }
    /* The stack below this frame held the deepest calls of the interpreter's life: dead now,
     * and given back (a page or two of margin kept; deeper calls get fresh zero pages). */
    uintptr_t low = page_down((uintptr_t)__builtin_frame_address(0)) - 2 * page_size;
    if (s->stack.end && low > s->stack.start && low <= s->stack.end)
        madvise((void *)s->stack.start, low - s->stack.start, MADV_DONTNEED);
    munmap(s, scratch_len);
    return copy;
}
