"""``python -m k2nb options`` prints the configuration table made from k2nb.options;
``python -m k2nb readme README.md`` rewrites that table in a README."""

from __future__ import annotations

import sys

from .options import markdown_table, update_readme


def main(argv: list[str]) -> int:
    if argv[:1] == ["readme"] and len(argv) == 2:
        print("README table updated" if update_readme(argv[1]) else "README table up to date")
        return 0
    if argv in ([], ["options"]):
        print(markdown_table())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


sys.exit(main(sys.argv[1:]))
