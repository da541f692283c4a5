"""Shared helpers for the plan/apply/rollout integration tests (import as ``support.reconcile``)."""
