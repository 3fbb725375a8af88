"""The Nova tier shares the project's single-node Ceph fixture."""

from tests.functional.ceph_fixture import ceph_cluster  # noqa: F401
