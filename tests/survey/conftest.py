"""Fixtures of the survey tests: the survey service in-process, acting as Nanchang's admin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from shared.settings import NodeSettings
from tests.conftest import identity_headers


@pytest.fixture
def survey_client(node_settings: NodeSettings) -> Iterator[TestClient]:
    """The survey service as an admin of Nanchang (360100)."""
    from services.survey.app import create_app

    with TestClient(create_app(node_settings), raise_server_exceptions=False) as client:
        client.headers.update(identity_headers(node_settings, "360100", "admin"))
        yield client
