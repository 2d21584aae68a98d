"""The student copies blank every worked answer and still parse."""

import ast
import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "student_notebooks", ROOT / "tools" / "student_notebooks.py")
student = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(student)

NOTEBOOKS = sorted([*(ROOT / "notebooks").glob("*.ipynb"),
                    *(ROOT / "notebooks").glob("labs/*.ipynb")])


def test_assignment_and_function_answers_are_blanked():
    source = ('x = 1\nguess = {"a": 2 * 3,   # your formulas here\n'
              '         "b": 4}\n\ndef f(y):   # your code here\n    return y + 1\n')
    blanked = student.blank_answers(source)
    assert blanked == ('x = 1\nguess = ...  # your formulas here\n\n'
                       'def f(y):   # your code here\n    ...\n')
    ast.parse(blanked)


def test_a_marked_line_of_another_kind_is_refused():
    with pytest.raises(ValueError, match="neither an assignment nor a def"):
        student.blank_answers("print(42)   # your answer here\n")


def test_a_lab_answer_cell_becomes_the_skeleton_under_its_name():
    source = ('# your lab answer: raft\nMyRaft = lk.labs.reference("raft")\n'
              'print(lk.labs.source("raft"))\n')
    copy = student.lab_skeleton(source)
    first, body = copy.split("\n", 1)
    assert first == "# your lab answer: raft"
    assert body.startswith('class MyRaft(lk.labs.skeleton("raft")):\n')
    assert "raise NotImplementedError(" in body and "reference" not in body
    ast.parse(copy)
    assert student.lab_skeleton("x = 1  # your answer here\n") is None


def test_a_lab_answer_cell_must_name_its_class():
    with pytest.raises(ValueError, match="defines no class"):
        student.lab_skeleton("# your lab answer: balancing\nprint(1)\n")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_student_copy_hides_every_answer_and_output(path):
    original = nbformat.read(path, as_version=4)
    copy = student.student_copy(original)
    for before, after in zip(original.cells, copy.cells, strict=True):
        if before.cell_type != "code":
            assert after.source == before.source
            continue
        assert after.outputs == [] and after.execution_count is None
        ast.parse(after.source)
        if student.lab_skeleton(before.source) is not None:
            assert "NotImplementedError" in after.source
            continue
        for line in after.source.splitlines():
            if student.MARK.search(line) and not line.lstrip().startswith("def "):
                assert re.search(r"= \.\.\.  #", line), line
        assert after.source.count("# your") == before.source.count("# your")


def test_running_again_never_overwrites_a_students_work(tmp_path):
    target, written = tmp_path / "nb.ipynb", {}
    assert student.update(target, "v1", written, "nb").startswith("wrote")
    assert student.update(target, "v1", written, "nb").startswith("up to date")
    assert student.update(target, "v2", written, "nb").startswith("updated")
    assert target.read_text() == "v2"                     # untouched: refreshed
    target.write_text("v2 and my answer")
    assert student.update(target, "v2", written, "nb").startswith("kept your work")
    message = student.update(target, "v3", written, "nb")
    assert target.read_text() == "v2 and my answer"       # edited: kept
    assert (tmp_path / "nb.new.ipynb").read_text() == "v3" and "nb.new.ipynb" in message


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_open_exercise_has_a_hint_and_a_rubric(path):
    """Both collapsed, so neither gives the answer away before a click."""
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "markdown":
            continue
        opened = len(re.findall(r"\*\*Exercise \d+ \(open\)\.\*\*", cell.source))
        assert cell.source.count("<details><summary>Hint</summary>") == opened
        assert cell.source.count(
            "<details><summary>What a good answer contains</summary>") == opened
