"""MkDocs hooks (`hooks:` in mkdocs.yml): the generated parts of the site, made by tools/docs_pages.py at each build.

Run MkDocs as `python -m mkdocs` from the repository root (`nox -s docs` does), so that `tools` is importable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

from tools import docs_pages

if TYPE_CHECKING:
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import Files
    from mkdocs.structure.pages import Page


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the spec reference, generated from the pydantic models, as if it were docs/reference/spec.md."""
    if files.get_file_from_path(docs_pages.SPEC_REFERENCE) is not None:
        raise PluginError(f"docs/{docs_pages.SPEC_REFERENCE} is generated at build time: delete the file")
    files.append(File.generated(config, docs_pages.SPEC_REFERENCE, content=docs_pages.spec_reference()))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Replace each `<!-- generated: <name> [<argument>] -->` line of a page by the part it names."""
    try:
        return docs_pages.expand(markdown)
    except docs_pages.DocsError as problem:
        raise PluginError(f"{page.file.src_uri}: {problem}") from problem
