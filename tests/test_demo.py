"""The README's main command: four node processes, the whole flow, nothing left pending."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from checkup.demo import run_demo


def test_three_tier_demo_runs_the_whole_flow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_demo(tmp_path / "demo", keep_running=False) == 0
    out = capsys.readouterr().out
    # The city's rejection reached the county with its reason, and the flow went on.
    assert "已收到退回意见" in out and "重新提交" in out
    assert "验收结果已下达到县" in out
    assert "两县数据在市、省两级的条数与校验和与县级完全一致" in out
    # Every link caught up; every node's API printed.
    pending = re.findall(r"待发 (\d+)，状态 (\w+)", out)
    # ("unlinked": a stream that never had anything to send, e.g. the city's own.)
    assert len(pending) >= 4 and all(n == "0" and s in ("active", "unlinked") for n, s in pending)
    assert sum(1 for _n, s in pending if s == "active") >= 4
    for code in ("360000", "360100", "360121", "360124"):
        assert re.search(rf"{code}\s+http://127\.0\.0\.1:\d+\s", out), code
    # No node logged an error.
    for log in (tmp_path / "demo").glob("*/node.log"):
        assert "Traceback" not in log.read_text(encoding="utf-8"), log
