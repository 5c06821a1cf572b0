"""Every test a document names (docs/claims.md, security.md's threat table, protocol.md's
choices) exists, so a renamed or removed test cannot leave a claim pointing at nothing."""

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_named_test_exists():
    named = 0
    for doc in DOCS:
        for path, name in re.findall(r"(tests/[\w/]+\.py)::(\w+)", doc.read_text()):
            if (path, name) == ("tests/path.py", "test_name"):  # the convention's example
                continue
            named += 1
            source = ROOT / path
            assert source.is_file(), f"{doc.name} names {path}, which does not exist"
            assert re.search(rf"^def {name}\(", source.read_text(), re.M), f"{doc.name} names {path}::{name}"
    assert named > 200
