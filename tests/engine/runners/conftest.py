"""The session's Ray test cluster (tests/engine/runners/raycluster.py), started on first use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.engine.runners.raycluster import LocalRayCluster, ray_available


@pytest.fixture(scope="session")
def ray_cluster_session() -> Iterator[LocalRayCluster]:
    reason = ray_available()
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
