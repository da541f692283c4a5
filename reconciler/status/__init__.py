"""Status of the custom resources: the one model, the one vocabulary, the one conditions helper.

A bottom layer beside ``config`` (it imports nothing of the controller), so every stage may use it:

* ``models``: ``NodeStatus`` (``MultiNicNodeConfig.status``) and ``ClusterStatus``
  (``ProxmoxCluster.status``), typed; ``schemas/*-status.schema.json`` and the CRDs' status
  schemas are generated from them (``python -m reconciler.kube.crds``).
* ``states``: the one table mapping each state to its phase, conditions, Event reason and metric
  label (``multinic_objects{phase}`` is the phase: alerts match what ``kubectl get`` shows).
* ``conditions``: metav1.Condition lists for both kinds; transition times move only on a flip.

The report stage computes each object's status once per cycle from these and writes it with one
patch; nothing else writes status.
"""
