"""Fail unless the JUnit report has PostgreSQL test cases and none of them was skipped.

Used by .ci/run: a CI run where the database was unreachable must not pass as green.
A test case counts as a PostgreSQL one when its name or classname contains "postgres".
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def main(path: str) -> int:
    cases = [
        case
        for case in ET.parse(path).getroot().iter("testcase")
        if "postgres" in f"{case.get('name', '')} {case.get('classname', '')}".lower()
    ]
    skipped = [
        case
        for case in cases
        # pytest reports xfail as <skipped type="pytest.xfail">: that test did run.
        if any(s.get("type") != "pytest.xfail" for s in case.iter("skipped"))
    ]
    if not cases:
        print(
            f"CI: no PostgreSQL test case in {path}; the postgres tests did not run",
            file=sys.stderr,
        )
        return 1
    if skipped:
        print(
            f"CI: {len(skipped)} of {len(cases)} PostgreSQL test cases were skipped:",
            file=sys.stderr,
        )
        for case in skipped[:20]:
            reason = next(case.iter("skipped")).get("message", "")
            print(f"  {case.get('classname')}::{case.get('name')}: {reason}", file=sys.stderr)
        return 1
    print(f"CI: {len(cases)} PostgreSQL test cases ran, none skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".ci-artifacts/junit.xml"))
