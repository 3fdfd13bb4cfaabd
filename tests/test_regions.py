"""Division codes: which region lies within which (the scope rule of every object access)."""

from __future__ import annotations

import pytest

from shared.regions import contains, related


@pytest.mark.parametrize(
    ("scope", "code", "inside"),
    [
        ("360000", "360000", True),  # a province holds itself
        ("360000", "360121", True),  # a county of it
        ("360000", "360121001", True),  # a street of that county
        ("360100", "360121", True),  # Nanchang holds Nanchang County
        ("360100", "360200", False),  # not another city
        ("360121", "360124", False),  # counties side by side
        ("360121", "360100", False),  # a county does not hold its city
        ("360121", "36012", False),  # not a division code
        ("", "360121", False),
    ],
)
def test_contains(scope: str, code: str, inside: bool) -> None:
    assert contains(scope, code) is inside


@pytest.mark.parametrize(
    ("a", "b", "on_one_line"),
    [
        ("360121", "360100", True),  # county and its city, either way round
        ("360100", "360121", True),
        ("360121", "360000", True),
        ("360121", "360121", True),
        ("360121", "360124", False),  # two counties of one city
        ("360121", "360200", False),  # a county and another city
        ("360121", "x", False),
    ],
)
def test_related(a: str, b: str, on_one_line: bool) -> None:
    assert related(a, b) is on_one_line
