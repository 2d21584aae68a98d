"""Write student copies of the notebooks: worked answers blanked, outputs cleared.

The stored notebooks carry a worked answer in every self-check (CI re-executes
them), on the line marked `# your formula here` (or answer, estimate, choice,
code). A student copy replaces each marked assignment's value, and each marked
function's body, with `...`, keeps the marker, and drops every output, so the
exercise can be tried cold. A lab notebook's answer cell starts with the line
`# your lab answer: <lab>` and defines one class (e.g. `MyRaft = ...`); the
student copy replaces the whole cell by that line and the lab's skeleton
under the same class name (`labkit.labs.skeleton_source`). Run:
`python tools/student_notebooks.py OUT_DIR [NOTEBOOK ...]` (`make student`
and `make lab` write student/, lab notebooks in student/labs/).

A student works in those copies, so running the tool again never overwrites
their work: OUT_DIR/.written.json remembers a digest of every copy as written.
A copy the student has not touched is brought up to date; a copy they edited
is kept, and when its instructor notebook has changed since, the new copy is
written beside it as `<name>.new.ipynb`.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import sys
from pathlib import Path

import nbformat

MARK = re.compile(r"#\s*your [\w ()]+")
LAB_ANSWER = re.compile(r"#\s*your lab answer:\s*(\w+)\s*$")


def lab_skeleton(source: str) -> str | None:
    """The student's version of a lab answer cell (the marker line, then the
    lab's skeleton under the cell's class name), or None for any other cell.

    Raises ValueError if a marked cell defines no class name to keep."""
    first, _, rest = source.partition("\n")
    marked = LAB_ANSWER.fullmatch(first.strip())
    if marked is None:
        return None
    names = [node.name if isinstance(node, ast.ClassDef) else node.targets[0].id
             for node in ast.parse(rest).body
             if isinstance(node, ast.ClassDef) or (isinstance(node, ast.Assign)
                                                   and isinstance(node.targets[0],
                                                                  ast.Name))]
    if not names:
        raise ValueError(f"the lab answer cell for {marked.group(1)!r} defines no "
                         "class: start it with `class MyAnswer(...)` or "
                         "`MyAnswer = ...`")
    from labkit import labs  # only lab notebooks need labkit here

    return f"{first}\n{labs.skeleton_source(marked.group(1), names[0])}"


def blank_answers(source: str) -> str:
    """The cell source with every marked answer replaced by `...`.

    Raises ValueError for a marked line that is neither an assignment nor a
    function definition, so a new kind of exercise cannot leak its answer.
    """
    lines = source.splitlines(keepends=True)
    marked = {n for n, line in enumerate(lines, 1) if MARK.search(line)}
    if not marked:
        return source
    edits: list[tuple[int, int, str]] = []        # (first line, last line, text)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.lineno in marked:
            first = lines[node.lineno - 1]
            comment = MARK.search(first).group(0)
            target = first[:node.value.col_offset]
            edits.append((node.lineno, node.end_lineno, f"{target}...  {comment}\n"))
            marked.discard(node.lineno)
        elif isinstance(node, ast.FunctionDef) and node.lineno in marked:
            body = node.body[0]
            indent = " " * body.col_offset
            edits.append((body.lineno, node.end_lineno, f"{indent}...\n"))
            marked.discard(node.lineno)
    leftover = sorted(n for n in marked if not any(a <= n <= b for a, b, _ in edits))
    if leftover:
        raise ValueError(f"marked lines {leftover} are neither an assignment nor a "
                         f"def: {[lines[n - 1].strip() for n in leftover]}")
    for first, last, text in sorted(edits, reverse=True):
        lines[first - 1:last] = [text]
    return "".join(lines)


def student_copy(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of `notebook` with answers blanked and no outputs."""
    copy = nbformat.from_dict(notebook)
    for cell in copy.cells:
        if cell.cell_type == "code":
            skeleton = lab_skeleton(cell.source)
            cell.source = blank_answers(cell.source) if skeleton is None else skeleton
            cell.outputs, cell.execution_count = [], None
    return copy


def update(target: Path, copy: str, written: dict[str, str], key: str) -> str:
    """Write `copy` to `target` unless that would overwrite a student's edits;
    record what was written in `written[key]`; say what happened."""
    digest = hashlib.sha256(copy.encode()).hexdigest()
    if not target.exists():
        action = "wrote"
    elif hashlib.sha256(target.read_bytes()).hexdigest() == written.get(key):
        if written[key] == digest:
            return f"up to date {target}"
        action = "updated"
    else:                        # the student's work: never overwrite it
        if written.get(key) == digest:
            return f"kept your work in {target}"
        target = target.with_suffix(".new.ipynb")
        target.write_text(copy, encoding="utf-8")
        written[key] = digest
        return (f"kept your work in {target.with_suffix('').with_suffix('.ipynb')}; "
                f"its notebook changed, the new copy is {target}")
    target.write_text(copy, encoding="utf-8")
    written[key] = digest
    return f"{action} {target}"


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print("usage: python tools/student_notebooks.py OUT_DIR [NOTEBOOK ...]",
              file=sys.stderr)
        return 2
    out = Path(argv[0])
    notebooks = [Path(p) for p in argv[1:]] or sorted(
        [*Path("notebooks").glob("*.ipynb"), *Path("notebooks").glob("labs/*.ipynb")])
    ledger = out / ".written.json"
    written = json.loads(ledger.read_text()) if ledger.exists() else {}
    for path in notebooks:
        relative = (path.relative_to("notebooks") if path.is_relative_to("notebooks")
                    else Path(path.name))
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        copy = nbformat.writes(student_copy(nbformat.read(path, as_version=4)))
        print(update(target, copy, written, relative.as_posix()))
        ledger.write_text(json.dumps(written, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
