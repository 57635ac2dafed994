"""The session's Ray test cluster (tests/engine/runners/raycluster.py), started on first use."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.engine.runners.raycluster import LocalRayCluster, ray_available


@pytest.fixture(scope="session")
def ray_cluster_session() -> Iterator[LocalRayCluster]:
    reason = ray_available()
    if reason and os.environ.get("AUTORESEARCH_REQUIRE_RAY"):  # CI installed it: absent is a failure
        pytest.fail(f"AUTORESEARCH_REQUIRE_RAY is set but there is no Ray test cluster: {reason} "
                    "(install the `ray` extra: pip install '.[dev,ray]')")
    if reason:
        pytest.skip(f"no Ray test cluster: {reason}")
    cluster = LocalRayCluster().start()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def ray_cluster(ray_cluster_session: LocalRayCluster) -> LocalRayCluster:
    """The cluster with a head and a second node alive (a test before may have killed one)."""
    ray_cluster_session.ensure_two_nodes()
    return ray_cluster_session
