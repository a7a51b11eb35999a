"""What CI systems read: JUnit XML test cases and a Markdown summary.

``harness gate check``, ``harness bench --compare`` and ``harness check`` each turn their verdicts
into :class:`Case` rows (one per compared configuration or check) and call :func:`publish`, which
writes ``--junit FILE`` and ``--markdown FILE`` and appends the Markdown to ``$GITHUB_STEP_SUMMARY``
when GitHub Actions sets it. GitLab CI reads the JUnit file through ``artifacts:reports:junit``.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Case:
    """One JUnit test case: ``failure`` is None when it passed, else the one-line reason."""

    classname: str
    name: str
    failure: str | None = None
    kind: str = "failure"  # the failure's type attribute (e.g. "regression", "missing")
    detail: str = ""  # the failure element's text: the numbers behind the verdict
    skipped: bool = False
    skipped_message: str = ""  # why it was skipped, when there is something to say


def junit_xml(cases: list[Case], suite_name: str) -> str:
    bad = sum(c.failure is not None for c in cases)
    skipped = sum(c.skipped for c in cases)
    root = ET.Element("testsuites", name=suite_name, tests=str(len(cases)), failures=str(bad))
    suite = ET.SubElement(root, "testsuite", name=suite_name, tests=str(len(cases)), failures=str(bad),
                          errors="0", skipped=str(skipped))
    for c in cases:
        case = ET.SubElement(suite, "testcase", classname=c.classname, name=c.name)
        if c.failure is not None:
            ET.SubElement(case, "failure", message=c.failure, type=c.kind).text = c.detail or c.failure
        elif c.skipped:
            ET.SubElement(case, "skipped", **({"message": c.skipped_message} if c.skipped_message else {}))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    cells = [[str(x).replace("|", "\\|") for x in row] for row in rows]
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(r) + " |" for r in cells]) + "\n"


def publish(markdown: str, cases: list[Case], suite_name: str, markdown_path: Path | None = None,
            junit_path: Path | None = None) -> list[Path]:
    """Write the Markdown (to ``markdown_path`` and ``$GITHUB_STEP_SUMMARY``) and the JUnit XML;
    returns the files written."""
    written = []
    if markdown_path is not None:
        Path(markdown_path).parent.mkdir(parents=True, exist_ok=True)
        Path(markdown_path).write_text(markdown)
        written.append(Path(markdown_path))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as fh:
            fh.write(markdown + "\n")
        written.append(Path(summary))
    if junit_path is not None:
        Path(junit_path).parent.mkdir(parents=True, exist_ok=True)
        Path(junit_path).write_text(junit_xml(cases, suite_name))
        written.append(Path(junit_path))
    return written
