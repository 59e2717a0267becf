"""The generated parts of the documentation site: the spec reference holds every field and every rule, each page's
markers expand, and the report sections say how to produce what a checkout lacks."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from render.parity import spec_fields
from render.targets import TargetConfig
from tools import docs_pages

REPO = Path(__file__).resolve().parents[3]
DOCS = REPO / "docs"


@pytest.fixture(scope="module")
def reference() -> str:
    return docs_pages.spec_reference()


def model_sections(page: str) -> dict[str, str]:
    """`### <Model> {#anchor}` heading → the section's text, up to the next heading."""
    parts = re.split(r"^#{2,3} ", page, flags=re.MULTILINE)[1:]
    return {part.split(" ", 1)[0].strip(): part for part in parts if "{#" in part.splitlines()[0]}


def field_row(section: str, field: str) -> str | None:
    return next((line for line in section.splitlines() if line.startswith(f"| `{field}` |")), None)


def target_configs() -> tuple[type[BaseModel], ...]:
    return typing.get_args(typing.get_args(TargetConfig)[0])


@pytest.mark.parametrize("target_config", target_configs(), ids=lambda t: t.target_kind())
def test_every_spec_field_is_in_the_reference_with_its_description(
    reference: str, target_config: type[BaseModel]
) -> None:
    # The parity report's own walk of the Spec, so a field the reference's walk missed cannot pass unnoticed.
    sections = model_sections(reference).values()
    missing = []
    for path, description in spec_fields(target_config):
        parent, _, leaf = path.rpartition(".")
        rows = [field_row(s, leaf) for s in sections if f"`{parent}`" in s.split("|", 1)[0]]
        rows = [row for row in rows if row is not None]
        if not any(" ".join(description.split()) in row.replace("\\|", "|") for row in rows):
            missing.append(path)
    assert not missing, f"spec fields missing from the reference: {missing}"


@pytest.mark.parametrize(
    "model",
    [root.model for root in docs_pages.ROOTS] + list(docs_pages.app_args_models().values()),
    ids=lambda m: m.__name__,
)
def test_every_model_of_every_edited_file_has_all_its_fields(reference: str, model: type[BaseModel]) -> None:
    # pydantic's JSON Schema names every nested model and its properties, independently of the reference's walk.
    schema = model.model_json_schema()
    models = {schema["title"]: schema, **{d["title"]: d for d in schema.get("$defs", {}).values()}}
    sections = model_sections(reference)
    for title, definition in models.items():
        if "properties" not in definition:
            continue  # an enum
        assert title in sections, f"{title} is missing from the reference"
        absent = [name for name in definition["properties"] if field_row(sections[title], name) is None]
        assert not absent, f"{title}: fields missing from the reference: {absent}"


def test_every_named_rule_in_render_is_in_the_reference(reference: str) -> None:
    # Read off the source: every `rule_error("<name>", ...)` and every literal rule name passed to a helper.
    source = "\n".join(path.read_text(encoding="utf-8") for path in sorted((REPO / "render").rglob("*.py")))
    names = set(re.findall(r'rule_error\(\s*"([a-z0-9_]+)"', source))
    names |= set(re.findall(r'_reject_duplicates\([^\n]*?"([a-z0-9_]+)"', source))
    assert len(names) > 40
    absent = sorted(name for name in names if f"`{name}`" not in reference)
    assert not absent, f"rules missing from the reference: {absent}"


def test_a_validator_shows_its_rule_hint_and_the_callers_literal_arguments(reference: str) -> None:
    section = model_sections(reference)["App"]
    assert "`unique_deployment_names`: deployment name ‹name› appears more than once." in section
    assert "*Hint:* give each a distinct deployment name" in section


def test_units_come_from_field_names() -> None:
    assert [docs_pages.unit(n) for n in ("p95_ms", "timeout_s", "memory_gib", "usd_per_hour", "num_cpus")] == [
        "milliseconds",
        "seconds",
        "GiB",
        "USD per hour",
        "",
    ]


@pytest.mark.parametrize("page", sorted(DOCS.rglob("*.md")), ids=lambda p: str(p.relative_to(DOCS)))
def test_every_marker_of_every_page_expands(page: Path) -> None:
    expanded = docs_pages.expand(page.read_text(encoding="utf-8"))
    assert "<!-- generated:" not in expanded


def test_the_reference_is_never_a_file_of_its_own() -> None:
    assert not (DOCS / docs_pages.SPEC_REFERENCE).exists(), "docs/reference/spec.md is generated at build time"


def test_an_unknown_marker_fails() -> None:
    with pytest.raises(docs_pages.DocsError, match="unknown generated part 'nope'"):
        docs_pages.expand("<!-- generated: nope -->")


def test_parity_tabs_hold_each_environment_s_report_under_the_page_s_headings(tmp_path: Path) -> None:
    for env, kind in (("staging-ecs", "ecs"), ("other-ecs", "ecs"), ("prod", "kuberay")):
        (tmp_path / env).mkdir()
        (tmp_path / env / "PARITY.md").write_text(f"# Parity of `{env}` on {kind}\n\n## Fields\n\n| a |\n")
    tabs = docs_pages.parity_tabs(tmp_path, "ecs")
    assert tabs.startswith('=== "other-ecs"\n\n    ##### Fields')
    assert '=== "staging-ecs"' in tabs
    assert "prod" not in tabs
    with pytest.raises(docs_pages.DocsError, match=r"no rendered/<env>/PARITY\.md of a cloudrun environment"):
        docs_pages.parity_tabs(tmp_path, "cloudrun")


def test_without_a_history_the_benchmarks_say_how_to_make_one(tmp_path: Path) -> None:
    text = docs_pages.bench_history(tmp_path / "history.csv")
    assert text.startswith('!!! info "No benchmark history in this build"')
    assert "`nox -s bench`" in text


def test_a_history_gives_the_latest_table_and_one_plot_line_per_system(tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    history.write_text(
        "timestamp,commit,env,load_generator,naive_rps,naive_p95_ms,served_rps,served_p95_ms,served_over_naive\n"
        "2026-12-01T10:00:00,aaa,bench,wrk,40.0,500.0,600.0,30.0,15.0\n"
        "2026-12-02T10:00:00,bbb,bench,wrk,42.0,480.0,,,\n"
    )
    text = docs_pages.bench_history(history)
    assert "| naive | 42.0 | 480.0 |" in text
    assert "| served | – | – |" in text  # the latest run did not measure it
    assert "| `served_over_naive` | – |" in text
    assert text.count("<svg ") == 2
    assert text.count(">served</text>") == 2


def test_the_http_floors_are_in_the_latest_table_with_the_ceiling_but_not_in_the_plots(tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    history.write_text(
        "timestamp,served_rps,served_p95_ms,floor_serve_rps,floor_serve_p95_ms,ceiling_over_best_peer\n"
        "2026-12-05T19:19:45,578.3,44.0,2747.2,13.4,0.768\n"
    )
    text = docs_pages.bench_history(history)
    assert "| floor_serve | 2747.2 | 13.4 |" in text
    assert "| `ceiling_over_best_peer` | 0.768 |" in text
    assert text.count(">served</text>") == 2
    assert ">floor_serve</text>" not in text


def test_the_latest_run_s_load_curve_is_a_table_and_two_plots(tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    columns = ["timestamp", "served_rps", "served_p95_ms"]
    older = ["2026-12-01T10:00:00", "600.0", "30.0"]
    latest = ["2026-12-02T10:00:00", "610.0", "29.0"]
    for system, clients, rps in (("served", 1, "90.0"), ("served", 64, "700.0"), ("bentoml", 1, "50.0")):
        columns += [
            f"curve_{system}_{clients}_rps",
            f"curve_{system}_{clients}_p50_ms",
            f"curve_{system}_{clients}_p95_ms",
        ]
        older += ["1.0", "1.0", "1.0"]
        latest += [rps, "10.00", "12.50"]
    history.write_text("\n".join(",".join(line) for line in (columns, older, latest)) + "\n")
    text = docs_pages.bench_history(history)
    assert "| 1 | 90.0, 10.00 / 12.50 | 50.0, 10.00 / 12.50 |" in text
    assert "| 64 | 700.0, 10.00 / 12.50 | –, – / – |" in text  # bentoml did not run at 64 clients
    assert text.count("<svg ") == 4  # the history's two and the curve's two
    assert ">64</text>" in text  # every client count labels the curve's x axis


def test_the_latest_run_s_generation_rows_are_a_table(tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    columns = ["timestamp", "served_rps", "served_p95_ms"]
    columns += [
        f"generation_{s}_{c}_{f}" for s in ("served", "naive") for c in (1, 8) for f in ("tokens_per_s", "ttft_p95_ms")
    ]
    before = ["2026-12-01T10:00:00", "600.0", "30.0", *[""] * 8]  # a run before the generation part
    latest = ["2026-12-02T10:00:00", "610.0", "29.0", "2700", "4.3", "4700", "14.9", "470", "25.8", "", ""]
    history.write_text("\n".join(",".join(line) for line in (columns, before, latest)) + "\n")
    text = docs_pages.bench_history(history)
    assert "| served | 8 | 4700 | 14.9 |" in text
    assert "| naive | 1 | 470 | 25.8 |" in text
    assert "| naive | 8 |" not in text  # not measured in the latest run
    history.write_text("\n".join(",".join(line) for line in (columns, before)) + "\n")
    assert "Generation in the latest run" not in docs_pages.bench_history(history)


def test_without_a_reliability_report_the_page_says_how_to_make_one(tmp_path: Path) -> None:
    assert "`nox -s reliability`" in docs_pages.latest_reliability(tmp_path)


def test_the_newest_reliability_report_is_shown_under_the_page_s_headings(tmp_path: Path) -> None:
    (tmp_path / "20261201T000000Z.md").write_text("# old\n")
    (tmp_path / "20261202T000000Z.md").write_text("# Reliability\n\n## Replica killed\n")
    text = docs_pages.latest_reliability(tmp_path)
    assert "20261202T000000Z.md" in text
    assert "### Reliability" in text
    assert "#### Replica killed" in text
    assert "old" not in text
