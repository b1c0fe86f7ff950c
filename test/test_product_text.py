"""The product speaks of itself: no development-process words in tracked files, and every
relative link in the documentation resolves (file and, for Markdown, heading anchor)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Words that describe how the project was developed, not what it is. Each pattern is
# narrow enough to leave ordinary words alone: pytest's scope="session", round(x, 2),
# "issue trackers", "helpers" and "main" as a function name all pass.
FORBIDDEN: dict[str, re.Pattern[str]] = {
    "numbered session": re.compile(r"\b[Ss]essions? \d"),
    "issue number": re.compile(r"\b[Ii]ssues? #?\d"),
    "numbered or relative round": re.compile(
        r"\b[Rr]ounds? \d|\b(this|previous|earlier|that) round\b"
    ),
    "development machine path": re.compile(r"/work/"),
    "outside specification": re.compile(r"shared/spec|\bspec/[\w-]+\.md"),
    "old-branch note": re.compile(r"(^|[\"#(]\s*)main: "),
    "development helpers": re.compile(
        r"\b(another|the other) helpers?\b|\bhelper (wrote|writes|is writing|session)\b"
        r"|\bagents?\b|\bworktree\b|\bwip-\d|\bfarm-studio\b"
    ),
    "development machine": re.compile(
        r"development (box|machine)|device (tool|machine)|no GPU was lent|\blent to\b"
    ),
}


def _tracked_text_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    files = []
    for name in filter(None, listed.split("\0")):
        path = ROOT / name
        if path.is_file() and path.suffix.lower() not in {".png", ".jpg", ".npz", ".pt"}:
            files.append(path)
    return files


def forbidden_words(text: str) -> list[tuple[int, str, str]]:
    """(line number, what, the matching text) for each forbidden phrase in ``text``."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for what, pattern in FORBIDDEN.items():
            match = pattern.search(line)
            if match:
                found.append((number, what, match.group(0)))
    return found


def test_word_list_catches_process_words_and_spares_ordinary_ones() -> None:
    # built at run time so that this file itself stays clean
    caught = [
        "measured in ses" + "sion 7",
        "as is" + "sue 13 asks",
        "see Is" + "sue #12",
        "earlier ro" + "und 3 figures",
        "figures of this ro" + "und",
        "/wo" + "rk/shared/x",
        "see shared/sp" + "ec/model.md",
        "written from sp" + "ec/evaluation.md",
        '    """ma' + 'in: it crashed"""',
        "# ma" + "in: SIGSEGV",
        "written by another hel" + "per",
        "the ag" + "ent ran it",
        "no GPU was le" + "nt",
        "on the develo" + "pment box",
    ]
    for text in caught:
        assert forbidden_words(text), text
    ordinary = [
        '@pytest.fixture(autouse=True, scope="session")',
        "tests of one session and concurrent sessions",
        "x = round(1 / 6, 4)",
        'f"round {round_}: no answer"',
        "the most common complaint in their issue trackers",
        "Shared helpers for the tests; distributed helpers",
        "def main(argv=None):",
        "ros2/rosidl_python#141",
        "rosbag2 sqlite3 and MCAP storage",
    ]
    for text in ordinary:
        assert not forbidden_words(text), text


def test_tracked_files_carry_no_development_process_words() -> None:
    this = Path(__file__).resolve()
    problems = []
    for path in _tracked_text_files():
        if path.resolve() == this:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        for number, what, match in forbidden_words(text):
            problems.append(f"{path.relative_to(ROOT)}:{number}: {what}: {match!r}")
    assert not problems, "\n".join(problems)


# ----------------------------------------------------------------------------- links
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~)")


def _prose_lines(text: str) -> list[str]:
    """Lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors of the Markdown headings in ``text`` (lower case, punctuation
    dropped, spaces to hyphens, repeats numbered -1, -2, ...)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for line in _prose_lines(text):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def broken_links(md: Path) -> list[str]:
    """The relative links of ``md`` whose file (or Markdown heading) does not exist."""
    broken = []
    text = md.read_text(encoding="utf-8")
    for line in _prose_lines(text):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            dest = (md.parent / path_part).resolve() if path_part else md.resolve()
            if not dest.exists():
                broken.append(f"{target} (no such file)")
            elif (
                anchor
                and dest.suffix == ".md"
                and anchor not in heading_anchors(dest.read_text(encoding="utf-8"))
            ):
                broken.append(f"{target} (no heading with that anchor)")
    return broken


def test_link_check_finds_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## The demo's timeline\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md) [ok](other.md#the-demos-timeline) [web](https://example.org/x)\n"
        "[gone](missing.md) [bad anchor](other.md#no-such-heading)\n"
        "```\n[inside a code block](also-missing.md)\n```\n"
    )
    assert broken_links(page) == [
        "missing.md (no such file)",
        "other.md#no-such-heading (no heading with that anchor)",
    ]


def test_every_relative_link_in_the_documentation_resolves() -> None:
    pages = [
        ROOT / "README.md",
        ROOT / "bench" / "README.md",
        *sorted((ROOT / "docs").rglob("*.md")),
    ]
    problems = [
        f"{page.relative_to(ROOT)}: {link}"
        for page in pages
        if page.exists()
        for link in broken_links(page)
    ]
    assert (ROOT / "README.md").exists()
    assert not problems, "\n".join(problems)
