"""Adding a node kind touches one new module, its golden data and the regenerated schema.

On a copy of the ``menus`` package, a ``notice`` kind is added as
``menus/nodes/notice.py`` with ``menus/nodes/testdata/notice.yaml``, the
schema file is regenerated, and the menus tests that concern kinds run on the
copy: the registry, the model's union, the validator, the engine and the
golden test pick the kind up with no other file changed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from menu_harness import ROOT
from node_harness import TESTDATA

import menus.nodes

NOTICE = '''\
"""``notice``: a text to read; any key goes on."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from menus.fields import NodeId, Text
from menus.nodes.base import Checks, Edge, NodeKind, Path_

if TYPE_CHECKING:
    from menus.hop import Hop
    from menus.model import MenuFile
    from menus.screen import Page


class NoticeNode(NodeKind):
    """A text to read; any key goes on to ``next``."""

    remembered: ClassVar[bool] = True
    single_key: ClassVar[bool] = True

    kind: Literal["notice"]
    text: Text
    next: NodeId

    def edges(self, model: MenuFile) -> tuple[Edge, ...]:
        return (Edge("any key", self.next, "next"),)

    def title(self) -> Text:
        return self.text

    def handle(self, hop: Hop, text: str, pages: list[Page]) -> bool:
        return hop.fire("next")

    def check(self, base: Path_, checks: Checks) -> None:
        checks.target((*base, "next"), self.next)


KIND = NoticeNode
'''

NOTICE_TESTDATA = """\
cases:
  - name: any key goes on
    nodes:
      intro: {kind: notice, text: {en: "Welcome"}, next: done}
      done: {kind: message, text: {en: "Bye"}}
    edges:
      intro: ["any key -> done"]
    ussd:
      - {node: "intro", text: "Welcome"}
      - {input: "5", node: "done", text: "Bye", final: true}
    ivr:
      - {node: "intro", say: ["Welcome"], digits: 1}
      - {input: "0", node: "operator", say: ["Operator"], final: true, handoff: "caller_request"}
  - name: the notice's own checks
    nodes:
      intro: {kind: notice, text: {en: "Welcome"}, next: nowhere}
    errors:
      - "error: node 'intro': dead end: no path from here to a final screen (message or operator)"
      - "error: node 'intro': target 'nowhere' does not exist"
"""

# The tests that know about kinds (the copy's schema file is regenerated first).
KIND_TESTS = ["test_node_kinds.py", "test_schema_and_sms.py", "test_validate.py", "test_turn.py"]


def test_a_new_kind_is_one_module_and_its_golden_data(tmp_path: Path) -> None:
    package = tmp_path / "menus"
    shutil.copytree(ROOT / "menus", package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "nodes" / "notice.py").write_text(NOTICE, encoding="utf-8")
    (package / "nodes" / "testdata" / "notice.yaml").write_text(NOTICE_TESTDATA, encoding="utf-8")
    regenerate = "from menus.schema import write_schema; write_schema()"
    subprocess.run([sys.executable, "-c", regenerate], cwd=tmp_path, check=True)
    assert '"notice"' in (package / "menu.schema.json").read_text(encoding="utf-8")

    tests = [str(Path(__file__).with_name(name)) for name in KIND_TESTS]
    run = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("--confcutdir", str(Path(__file__).parent), "--rootdir", str(ROOT)),
            *("-o", f"pythonpath={tmp_path}", "-W", "error", *tests),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout


def test_the_copy_runs_the_copy() -> None:
    # What the test above relies on: the harness finds golden data next to the
    # kinds of the imported package, not at a fixed path of this repository.
    assert Path(menus.nodes.__file__).parent / "testdata" == TESTDATA
