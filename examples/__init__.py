"""Bundled target workloads (data: copied into a workspace by `init`)."""
