"""The Stop hook and the engine read a ledger the same way (issue 10: they used to drift).

The hook loads engine/core by path under `python -S`; the engine imports it as a package.
For each malformed ledger, the runs and runs-since-best the hook acts on (the numbers in its
block message) must equal the engine's frontier, so both decide plateaus alike.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from autoresearch_tui.engine.core.ledger import compute_frontier, read_ledger
from tests.hooks.test_hooks import STOP, arm, hook, repo, stop_input  # noqa: F401 (fixture)

HEADER = "run_id\tts\tcommit\tstep_time_ms\tstatus\tdescription\n"
GOOD = ("0001\tt\taaaa1111\t10.0\tkeep\tbaseline\n"
        "0002\tt\tbbbb2222\t9.0\tkeep\tjit\n")

MALFORMED = {
    "keep row with a malformed commit": HEADER + GOOD + "0003\tt\tNOT-A-SHA\t5.0\tkeep\tbad commit\n"
                                        "0004\tt\tcccc3333\t9.5\tdiscard\tx\n",
    "duplicate run_id": HEADER + GOOD + "0002\tt\tdddd4444\t4.0\tkeep\tagain\n0003\tt\teeee5555\t9.9\tdiscard\tx\n",
    "bad run_id": HEADER + GOOD + "run3\tt\tffff6666\t3.0\tkeep\tx\n0004\tt\t11112222\t9.9\tdiscard\tx\n",
    "missing header": GOOD + "0003\tt\t33334444\t8.0\tkeep\tfaster\n0004\tt\t55556666\t8.5\tdiscard\tx\n",
    "torn last line": HEADER + GOOD + "0003\tt\t77778888\t9.5\tdiscard\tx\n0004\tt\t9999",
    "wrong field count": HEADER + GOOD + "0003\tt\taaaa0000\t2.0\tkeep\n0004\tt\tbbbb0000\t9.1\tdiscard\tx\n",
    "unknown status": HEADER + GOOD + "0003\tt\tcccc0000\t1.0\tkept\tx\n0004\tt\tdddd0000\t9.2\tcrash\tx\n",
    "metric not a number": HEADER + GOOD + "0003\tt\teeee0000\tfast\tkeep\tx\n0004\tt\tffff0000\t9.3\tdiscard\tx\n",
    "swapped columns": "run_id\tts\tcommit\tstatus\tstep_time_ms\tdescription\n"
                       "0001\tt\taaaa1111\tkeep\t10.0\tbaseline\n0002\tt\tbbbb2222\tkeep\t9.0\tjit\n"
                       "0003\tt\tcccc3333\tdiscard\t9.4\tx\n",
    "extra notes column": "run_id\tts\tcommit\tstep_time_ms\tstatus\tdescription\tnotes\n"
                          "0001\tt\taaaa1111\t10.0\tkeep\tbaseline\tn\n0002\tt\tbbbb2222\t8.0\tkeep\tjit\tn\n"
                          "0003\tt\tcccc3333\t8.4\tdiscard\tx\tn\n",
    "CRLF line ends and a non-UTF-8 byte": (HEADER + GOOD).replace("\n", "\r\n")
                                           + "0003\tt\tdddd3333\t9.6\tdiscard\tcaf\xe9\r\n",
    "infinite and NaN metrics": HEADER + GOOD + "0003\tt\teeee3333\tinf\tkeep\tx\n0004\tt\tffff3333\tnan\tkeep\ty\n",
}


def lane_ledger(repo: Path) -> Path:
    return repo / ".claude" / "autoresearch" / "lanes" / "a" / "results.tsv"


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_hook_and_engine_agree_on_every_malformed_ledger(repo, case):  # noqa: F811
    arm(repo)
    path = lane_ledger(repo)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = MALFORMED[case]
    path.write_bytes(data.encode("latin-1") if "\xe9" in data else data.encode("utf-8"))

    rows, _warnings = read_ledger(path, "step_time_ms")
    engine = compute_frontier(rows, "minimize", "step_time_ms")

    _, answer, _ = hook(STOP, stop_input(), repo)
    assert answer and answer["decision"] == "block"
    found = re.search(r"(\d+) runs recorded, (\d+) since the last new best", answer["reason"])
    assert found, answer["reason"]
    assert (int(found.group(1)), int(found.group(2))) == (engine.runs, engine.runs_since_best), case
