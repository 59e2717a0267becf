"""Summarise a `pip-audit --format json` report: print findings, say plainly what could not be audited.

Exit 1 when any pinned dependency has a known vulnerability; exit 0 otherwise, also when no advisory service
answered (this machine reaches the package index but not PyPI's JSON API or OSV), which is reported, not hidden.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(report_path: str) -> int:
    """Print the summary of the report at `report_path`; return the exit code."""
    report = json.loads(Path(report_path).read_text(encoding="utf-8"))
    dependencies = report["dependencies"]
    audited = [d for d in dependencies if "skip_reason" not in d]
    skipped = [d for d in dependencies if "skip_reason" in d]
    findings = [(d, v) for d in audited for v in d.get("vulns", [])]
    for dependency, vuln in findings:
        fixes = ", ".join(vuln.get("fix_versions", [])) or "none yet"
        print(f"VULNERABLE {dependency['name']}=={dependency['version']}: {vuln['id']} (fixed in: {fixes})")
    print(f"pip-audit: {len(audited)} of {len(dependencies)} pinned dependencies audited, {len(findings)} findings")
    if skipped:
        reasons = sorted({d["skip_reason"].split(":")[0] for d in skipped})
        print(f"pip-audit: NOT audited ({len(skipped)}): {', '.join(d['name'] for d in skipped)}")
        print(f"pip-audit: reason: {'; '.join(reasons)} (no advisory service reachable from this machine?)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
