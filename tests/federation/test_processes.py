"""Fault cases with every node its own process; each ends in reconciliation: the province
holds exactly the union of what the counties approved, zero lost, zero doubled."""

from __future__ import annotations

from tests.federation.processes import (
    CITY,
    COUNTY_A,
    COUNTY_B,
    ProcessTiers,
    assert_reconciled,
    checksum,
    enter_values,
    push_links,
    submit_and_approve,
    wait_for,
)


def test_parent_down_while_child_pushes(process_tiers: ProcessTiers) -> None:
    tiers = process_tiers
    a, b = tiers.counties[COUNTY_A], tiers.counties[COUNTY_B]
    tiers.province.stop()
    tiers.city.stop()
    entered = enter_values(a, tiers) + enter_values(b, tiers)
    for county in (a, b):
        submit_and_approve(county, tiers)

    # The counties keep everything and report the link's trouble while the city is down.
    def failing() -> bool:
        return all(
            link["pending"] > 0 and link["last_error"] for n in (a, b) for link in push_links(n)
        )

    wait_for(failing, what="pending with an error at both counties")

    # The city comes back (the province still down): it takes the counties' changes and
    # keeps them for the province.
    tiers.city.start()
    wait_for(lambda: checksum(tiers.city, tiers, COUNTY_A) == checksum(a, tiers, COUNTY_A))
    relayed = [link for link in push_links(tiers.city) if link["pending"] > 0]
    assert {link["stream"] for link in relayed} >= {a.node_id, b.node_id}

    tiers.province.start()
    got = assert_reconciled(tiers)
    # Derived (formula) values are computed at every tier: at least what was entered.
    total = sum(n for n, _ in got.values())
    assert total >= entered > 0
    assert checksum(tiers.province, tiers, CITY)[0] == total
    wait_for(lambda: all(link["pending"] == 0 for link in push_links(tiers.city)))
