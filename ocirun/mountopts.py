"""Mount options of config.md and mount(8), turned into what mount(2) and mount_setattr(2) take."""
from . import kernel as k

# option -> (flags to set, flags to clear) for mount(2)
FLAGS = {
    "defaults": (0, 0),
    "ro": (k.MS_RDONLY, 0), "rw": (0, k.MS_RDONLY),
    "nosuid": (k.MS_NOSUID, 0), "suid": (0, k.MS_NOSUID),
    "nodev": (k.MS_NODEV, 0), "dev": (0, k.MS_NODEV),
    "noexec": (k.MS_NOEXEC, 0), "exec": (0, k.MS_NOEXEC),
    "sync": (k.MS_SYNCHRONOUS, 0), "async": (0, k.MS_SYNCHRONOUS),
    "dirsync": (k.MS_DIRSYNC, 0),
    "remount": (k.MS_REMOUNT, 0),
    "mand": (k.MS_MANDLOCK, 0), "nomand": (0, k.MS_MANDLOCK),
    "noatime": (k.MS_NOATIME, 0), "atime": (0, k.MS_NOATIME),
    "nodiratime": (k.MS_NODIRATIME, 0), "diratime": (0, k.MS_NODIRATIME),
    "relatime": (k.MS_RELATIME, 0), "norelatime": (0, k.MS_RELATIME),
    "strictatime": (k.MS_STRICTATIME, 0), "nostrictatime": (0, k.MS_STRICTATIME),
    "lazytime": (k.MS_LAZYTIME, 0), "nolazytime": (0, k.MS_LAZYTIME),
    "nosymfollow": (k.MS_NOSYMFOLLOW, 0), "symfollow": (0, k.MS_NOSYMFOLLOW),
    "iversion": (k.MS_I_VERSION, 0), "noiversion": (0, k.MS_I_VERSION),
    "silent": (k.MS_SILENT, 0), "loud": (0, k.MS_SILENT),
    "bind": (k.MS_BIND, 0), "rbind": (k.MS_BIND | k.MS_REC, 0),
}

PROPAGATION = {
    "private": k.MS_PRIVATE, "rprivate": k.MS_PRIVATE | k.MS_REC,
    "shared": k.MS_SHARED, "rshared": k.MS_SHARED | k.MS_REC,
    "slave": k.MS_SLAVE, "rslave": k.MS_SLAVE | k.MS_REC,
    "unbindable": k.MS_UNBINDABLE, "runbindable": k.MS_UNBINDABLE | k.MS_REC,
}

# recursive option -> (attributes to set, attributes to clear) for mount_setattr(2)
RECURSIVE = {
    "rro": (k.MOUNT_ATTR_RDONLY, 0), "rrw": (0, k.MOUNT_ATTR_RDONLY),
    "rnosuid": (k.MOUNT_ATTR_NOSUID, 0), "rsuid": (0, k.MOUNT_ATTR_NOSUID),
    "rnodev": (k.MOUNT_ATTR_NODEV, 0), "rdev": (0, k.MOUNT_ATTR_NODEV),
    "rnoexec": (k.MOUNT_ATTR_NOEXEC, 0), "rexec": (0, k.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (k.MOUNT_ATTR_NODIRATIME, 0), "rdiratime": (0, k.MOUNT_ATTR_NODIRATIME),
    "rrelatime": (k.MOUNT_ATTR_RELATIME, k.MOUNT_ATTR__ATIME),
    "rnorelatime": (0, k.MOUNT_ATTR__ATIME),
    "rnoatime": (k.MOUNT_ATTR_NOATIME, k.MOUNT_ATTR__ATIME),
    "ratime": (k.MOUNT_ATTR_RELATIME, k.MOUNT_ATTR__ATIME),
    "rstrictatime": (k.MOUNT_ATTR_STRICTATIME, k.MOUNT_ATTR__ATIME),
    "rnostrictatime": (k.MOUNT_ATTR_RELATIME, k.MOUNT_ATTR__ATIME),
    "rnosymfollow": (k.MOUNT_ATTR_NOSYMFOLLOW, 0), "rsymfollow": (0, k.MOUNT_ATTR_NOSYMFOLLOW),
}

IDMAP = ("idmap", "ridmap")  # an idmapped bind mount: its top mount, or every mount of the tree
# Options that ask ocirun for something rather than the kernel (runc and crun know them too).
COPY_UP = "tmpcopyup"  # the new tmpfs starts with what its destination held


class MountOptions:
    __slots__ = ("flags", "propagation", "attr_set", "attr_clr", "data", "copy_up", "idmap")

    def __init__(self, flags, propagation, attr_set, attr_clr, data, copy_up=False, idmap=""):
        self.flags, self.propagation, self.data = flags, propagation, data
        self.attr_set, self.attr_clr, self.copy_up, self.idmap = attr_set, attr_clr, copy_up, idmap


def parse(options: list[str]) -> MountOptions:
    """Later options win over earlier ones, as with mount(8); anything unknown is filesystem data."""
    flags = propagation = attr_set = attr_clr = 0
    copy_up = False
    idmap = ""
    data = []
    for opt in options:
        if opt in FLAGS:
            on, off = FLAGS[opt]
            flags = (flags | on) & ~off
        elif opt in PROPAGATION:
            propagation = PROPAGATION[opt]
        elif opt in RECURSIVE:
            on, off = RECURSIVE[opt]
            attr_clr |= off
            attr_set = (attr_set & ~off) | on
            if not on:
                attr_set &= ~off
        elif opt == COPY_UP:
            copy_up = True
        elif opt in IDMAP:
            idmap = opt
        else:
            data.append(opt)
    return MountOptions(flags, propagation, attr_set, attr_clr, ",".join(data) or None, copy_up, idmap)
