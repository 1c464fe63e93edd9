"""The live processes of a uid: what the rootless tests check is gone with their throwaway user."""
import os
from pathlib import Path


def live_processes(uid: int) -> list[int]:
    """Every process of uid but zombies (a zombie waits for a parent of its own, not for us)."""
    found = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.stat(f"/proc/{p}").st_uid == uid and Path(f"/proc/{p}/stat").read_text().split(") ")[1][0] != "Z":
                    found.append(int(p))
            except (OSError, IndexError):
                pass
    return found
