"""The README's and the docs' copies of the results tables, between markers
(<!-- results/NAME --> ... <!-- /results/NAME -->), so that a document never shows an older
copy of a table than the file."""

from __future__ import annotations

from pathlib import Path

from maml.files import FileFormatError


# The documents that show results tables, and which (the README its headline table alone).
DOCUMENT_TABLES = {"README.md": ("headline.md",),
                   "docs/results.md": ("table.md", "best_per_cell.md", "selection.md",
                                       "in_progress.md", "lake_runs.md")}
README_TABLES = tuple(name for names in DOCUMENT_TABLES.values() for name in names)
NO_ROWS = "(none)"


def table_rows(markdown: str) -> str:
    """A Markdown file's table lines and then its list items (a blank line between), or
    NO_ROWS."""
    lines = markdown.splitlines()
    rows = [line for line in lines if line.startswith("|")]
    items = [line for line in lines if line.startswith("- ")]
    blocks = ["\n".join(block) for block in (rows, items) if block]
    return "\n\n".join(blocks) if blocks else NO_ROWS


def _readme_block(readme: str, name: str) -> tuple[int, int]:
    """Start and end of the text between the README's markers for results/NAME."""
    begin, end = f"<!-- results/{name} -->\n", f"\n<!-- /results/{name} -->"
    start = readme.find(begin)
    stop = readme.find(end, start + len(begin))
    if start < 0 or stop < 0:
        raise FileFormatError(f"the README has no {begin.strip()} ... {end.strip()} block")
    return start + len(begin), stop


def readme_table(readme: str, name: str) -> str:
    """The block between the README's markers for results/NAME."""
    start, stop = _readme_block(readme, name)
    return readme[start:stop]


def readme_with_results(readme: str, results_dir, names=README_TABLES) -> str:
    """A document (the README, a docs page) with the block of each of `names` replaced by
    its results file's rows."""
    for name in names:
        path = Path(results_dir) / name
        if not path.is_file():
            raise FileFormatError(f"{path}: no such file (run the aggregate first)")
        start, stop = _readme_block(readme, name)
        readme = readme[:start] + table_rows(path.read_text()) + readme[stop:]
    return readme
