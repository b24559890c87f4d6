"""How heavy steps share a cluster: concurrency pools (slots set in the instance's `concurrency.pools`,
deploy/helm/values.yaml) and the pod resources each step asks for under the Kubernetes step executor
(`PATIENT_INSIGHTS_EXECUTOR=k8s_job`; ignored by the local multiprocess executor)."""

from __future__ import annotations

from typing import Any

BUCKET_POOL = "bucket_builds"
"""Per-bucket rebuilds (silver, devices, gold person tables): each reads and writes one partition."""
TRAINING_POOL = "model_training"
"""Model training reads the whole lake; one or two at a time is plenty."""


def step_resources(cpu: str, memory: str, memory_limit: str) -> dict[str, Any]:
    """Op tags asking the Kubernetes step executor for a pod of this size."""
    return {
        "dagster-k8s/config": {
            "container_config": {
                "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}}
            }
        }
    }


BUCKET_STEP = step_resources("1", "2Gi", "4Gi")
TRAINING_STEP = step_resources("2", "6Gi", "12Gi")
