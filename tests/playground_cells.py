"""Which cells of a notebook its playgrounds need: the browser test
(test_browser.py) runs only those in JupyterLab, as nbval runs all of them.

A cell builds a playground if it calls `explore` or a function named
*_playground or *_panel (as bench/widgets.py counts them); it needs every
earlier cell that binds a name it reads, transitively.
"""

from __future__ import annotations

import ast
import builtins
import json
from pathlib import Path


def playground_copy(notebook: Path) -> tuple[Path, list[int], list[int]]:
    """Write beside `notebook` (the server's copy) <stem>.playgrounds.ipynb:
    its code cells that build a playground and those they need (`needed_cells`),
    without outputs. Returns its path, and the indexes among the notebook's
    code cells of the cells that build a playground and of all those kept."""
    stored = json.loads(notebook.read_text())
    code = [cell for cell in stored["cells"] if cell["cell_type"] == "code"]
    sources = ["".join(cell["source"]) for cell in code]
    builders = [i for i, source in enumerate(sources) if builds_playground(source)]
    kept = needed_cells(sources, builders)
    stored["cells"] = [{**code[i], "outputs": [], "execution_count": None}
                       for i in kept]
    copy = notebook.with_name(f"{notebook.stem}.playgrounds.ipynb")
    copy.write_text(json.dumps(stored, indent=1))
    return copy, builders, kept


def syntax(source: str) -> ast.Module:
    """A cell's code as Python (IPython's %magic and !shell lines left out)."""
    return ast.parse("\n".join(line for line in source.splitlines()
                               if not line.lstrip().startswith(("%", "!"))))


def builds_playground(source: str) -> bool:
    """The cell calls `explore` or a function named *_playground or *_panel."""
    for node in ast.walk(syntax(source)):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name == "explore" or name.endswith(("_playground", "_panel")):
                return True
    return False


def bound_and_read(source: str) -> tuple[set[str], set[str]]:
    """The names a cell binds (assignments, imports, definitions, loop and
    function variables) and the names it reads."""
    bound, read = set(), set()
    for node in ast.walk(syntax(source)):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return bound, read


def needed_cells(sources: list[str], wanted: list[int]) -> list[int]:
    """The cells `wanted` and, transitively, every earlier cell that binds a
    name one of them reads without binding it itself (builtins aside), in
    notebook order. A cell that only changes an object in place, without
    binding its name, is not found: the playground then fails loudly."""
    names = [bound_and_read(source) for source in sources]
    kept, todo = set(wanted), list(wanted)
    while todo:
        i = todo.pop()
        bound, read = names[i]
        free = read - bound - set(dir(builtins))
        for j in range(i):
            if j not in kept and free & names[j][0]:
                kept.add(j)
                todo.append(j)
    return sorted(kept)
