"""The README and docs/ stay true: their examples run, their links resolve.

* every ``yaml`` block that is a drs.yaml (it has ``projects:``) parses with
  ``parse_settings``, its environment variables given as a dict;
* every ``sql`` block, and every ``drs-pipeline sql "..."`` in a shell block, returns
  rows on the published copy of a history built by real syncs of the embedded
  simulator (the demo's data);
* every relative link points at a file in the repository (and an anchor at a heading
  of it); the README links nothing outside the repository and stays small.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
import yaml

from drs_pipeline.config import (
    AUTH_KEYS,
    TOP_LEVEL_KEYS,
    embedded_simulator_settings,
    parse_settings,
)
from drs_pipeline.sync import run_sync
from drs_pipeline.warehouse.marts import build_marts
from drs_pipeline.warehouse.publish import publish

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted([README, *(ROOT / "docs").rglob("*.md")])
MAX_README_BYTES = 10_240

# Every variable the examples name, with a value of the right shape: input, as a
# user's environment would give it.
FAKE_ENV = {
    "DRS_AUTH_TOKEN": "token-0123456789abcdef",
    "HUAWEICLOUD_SDK_AK": "AKEXAMPLE0123456789",
    "HUAWEICLOUD_SDK_SK": "SKEXAMPLE0123456789",
    "HUAWEICLOUD_SDK_SECURITY_TOKEN": "securitytoken0123",
    "HUAWEICLOUD_IAM_PASSWORD": "password-0123",
    "PARTNER_AK": "PARTNERAK0123456789",
    "PARTNER_SK": "PARTNERSK0123456789",
}

_FENCE = re.compile(
    r"^(?P<indent> *)```(?P<lang>[\w-]*)\n(?P<body>.*?)^(?P=indent)```", re.M | re.S
)
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\((?P<target>[^)\s]+)\)")
_CLI_SQL = re.compile(r'drs-pipeline sql (?:--csv )?"(?P<query>[^"]+)"')


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str
    body: str

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _blocks(lang: str) -> list[Block]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            if match["lang"] != lang:
                continue
            indent = len(match["indent"])
            body = "\n".join(line[indent:] for line in match["body"].splitlines())
            found.append(Block(path, text.count("\n", 0, match.start()) + 1, lang, body))
    return found


def _prose(text: str) -> str:
    """The text outside fenced blocks (a link inside a block is an example, not a link)."""
    return _FENCE.sub("", text)


def _slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(m[1]) for m in re.finditer(r"^#+ (.+)$", _prose(path.read_text("utf-8")), re.M)}


DRS_YAML_BLOCKS = [b for b in _blocks("yaml") if yaml.safe_load(b.body).get("projects")]
SQL_EXAMPLES = [(str(b), b.body) for b in _blocks("sql")] + [
    (str(b), match["query"]) for b in _blocks("sh") for match in _CLI_SQL.finditer(b.body)
]


def test_the_docs_hold_examples_of_each_kind() -> None:
    # What the tests below check is there to check: a parser gone blind would pass.
    assert len(DRS_YAML_BLOCKS) == 4
    assert len(SQL_EXAMPLES) == 14
    assert [p.relative_to(ROOT).as_posix() for p in DOCS] == [
        "README.md",
        "docs/alerts.md",
        "docs/configuration.md",
        "docs/data-model.md",
        "docs/decisions/0001-moving-list-protocol.md",
        "docs/decisions/0002-published-copy.md",
        "docs/decisions/0003-merge-design.md",
        "docs/decisions/0004-gc-setting.md",
        "docs/decisions/0005-http-stack.md",
        "docs/decisions/0006-normalization.md",
        "docs/decisions/0007-real-and-simulated-history.md",
        "docs/decisions/0008-duration-bounds.md",
        "docs/decisions/0009-the-watch.md",
        "docs/decisions/0010-alerts.md",
        "docs/decisions/0011-partitions.md",
        "docs/decisions/0012-marts-rebuild-what-changed.md",
        "docs/decisions/README.md",
        "docs/deploy.md",
        "docs/drs-api.md",
        "docs/exploring.md",
        "docs/operations.md",
        "docs/performance.md",
        "docs/simulator.md",
        "docs/sync.md",
        "docs/watch.md",
    ]


@pytest.mark.parametrize("block", DRS_YAML_BLOCKS, ids=str)
def test_every_drs_yaml_example_parses(block: Block) -> None:
    settings = parse_settings(yaml.safe_load(block.body), str(block), FAKE_ENV)
    assert settings.projects
    assert all(settings.auth_for(project) is not None for project in settings.projects)


def test_drs_example_yaml_parses() -> None:
    path = ROOT / "drs.example.yaml"
    settings = parse_settings(yaml.safe_load(path.read_text("utf-8")), str(path), FAKE_ENV)
    assert [(p.project_id, p.region, p.endpoint) for p in settings.projects] == [
        (
            "0123456789abcdef0123456789abcdef",
            "cn-south-2",
            "https://drs.cn-south-2.myhuaweicloud.com",
        ),
        (
            "fedcba9876543210fedcba9876543210",
            "cn-south-4",
            "https://drs.cn-south-4.myhuaweicloud.com",
        ),
    ]


def test_configuration_md_names_every_key() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text("utf-8")
    keys = TOP_LEVEL_KEYS | {key for keys in AUTH_KEYS.values() for key in keys}
    keys |= {"project_id", "region", "endpoint"}
    # Named in code quotes, alone or as the end of a path (`projects[].region`).
    named = set(re.findall(r"`(?:[\w\[\]]+\.)*(\w+)`", text))
    assert sorted(keys - named) == []
    for variable in ("DRS_HOME", "DRS_CONFIG", "DRS_DUCKDB_PATH", "DRS_PUBLISHED_PATH"):
        assert f"`{variable}`" in text


@pytest.fixture(scope="module")
def demo_copy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The published copy of a demo history: real syncs of the embedded simulator,
    a second apart, until jobs have changed status and one has left (the demo's
    world runs 60 times faster than the wall clock, so this takes a few syncs)."""
    database = tmp_path_factory.mktemp("docs") / "drs_history.duckdb"
    settings = embedded_simulator_settings()
    changed = gone = 0
    for sync in range(40):
        report = run_sync(settings, database)
        changed += sum(p.run.changed_jobs for p in report.projects)
        gone += sum(p.run.gone_jobs for p in report.projects)
        if sync >= 2 and changed >= 2 and gone >= 1:
            break
        time.sleep(1)
    assert changed >= 2 and gone >= 1, "the demo's world did not move in 40 syncs"
    now = datetime.now(UTC)
    build_marts(
        database,
        stuck_thresholds_s=settings.stuck_thresholds_s,
        as_of=now,
        configured_projects={p.project_id: p.region for p in settings.projects},
        freshness_minutes=settings.freshness_minutes,
    )
    copy = database.with_name("drs_history_published.duckdb")
    publish(database, copy, published_at=now)
    yield copy


def test_every_sql_example_returns_rows_on_the_demo(demo_copy: Path) -> None:
    empty = []
    with duckdb.connect(str(demo_copy), read_only=True) as con:
        for where, query in SQL_EXAMPLES:
            # A failing query raises here, naming itself in the traceback.
            if not con.execute(query).fetchall():
                empty.append(where)
    assert empty == []


def test_every_python_example_compiles() -> None:
    for block in _blocks("python"):
        compile(block.body, str(block), "exec")


def test_every_relative_link_resolves_inside_the_repository() -> None:
    broken = []
    for path in DOCS:
        for match in _LINK.finditer(_prose(path.read_text("utf-8"))):
            target = match["target"]
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            inside = resolved.is_relative_to(ROOT) and resolved.exists()
            if not inside or (anchor and (resolved.is_dir() or anchor not in _anchors(resolved))):
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert broken == []


def test_the_readme_is_short_and_links_nothing_outside() -> None:
    text = README.read_text("utf-8")
    assert len(text.encode("utf-8")) <= MAX_README_BYTES
    assert "../" not in text
    targets = [m["target"] for m in _LINK.finditer(_prose(text))]
    assert [t for t in targets if re.match(r"[a-z]+:", t)] == []
