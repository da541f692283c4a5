"""Report stage: what happened, written where users look.

``status`` computes custom-resource status (metav1 conditions, no timestamp churn: a status is
written only when its content changed); ``events`` records Kubernetes Events on transitions;
``gitstatus`` renders the ``status/`` files committed back to the config repo.
"""
