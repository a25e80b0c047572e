"""mkdocs hook: README.md is the site's home page.

The README is read on the repository's front page, where its links into the reference start with
`docs/` (`docs/agents.md#claude`); on the site those pages sit at the top, so the home page gets
the README with that prefix taken off. Every other link of the README is then checked by
`mkdocs build --strict` like any page's: one that leads nowhere fails the build.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

_INTO_DOCS = re.compile(r"(\]\()docs/")


def on_files(files: Files, config: Any) -> Files:
    readme = Path(config.config_file_path).parent / "README.md"
    text = _INTO_DOCS.sub(r"\1", readme.read_text(encoding="utf-8"))
    files.append(File.generated(config, "index.md", content=text))
    return files
