"""docs/api.md's examples, run as they are written: each ```python block in its own namespace
with BUNDLE (a busybox bundle) and ROOT (a private state root)."""
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs/api.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_doc_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("n", range(len(BLOCKS)))
def test_example(n, bundle, state_root, capsys):
    b = bundle(["sleep", "1000"])
    exec(compile(BLOCKS[n], f"docs/api.md example {n + 1}", "exec"), {"BUNDLE": str(b), "ROOT": str(state_root)})
