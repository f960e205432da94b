"""Write the README's flag table from the settings' declarations (`exporter.core.settings.OPTIONS`).

.venv/bin/python scripts/flag_table.py           # rewrite README.md in place
.venv/bin/python scripts/flag_table.py --check   # exit 1 if README.md has drifted
"""

from __future__ import annotations

import sys
from pathlib import Path

from exporter.core.settings import readme_with_table

README = Path(__file__).resolve().parents[1] / "README.md"


def main(argv: list[str]) -> int:
    current = README.read_text(encoding="utf-8")
    wanted = readme_with_table(current)
    if "--check" in argv:
        return 0 if wanted == current else 1
    README.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
