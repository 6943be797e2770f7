"""policy.yaml: the typed model (``model``), loading with line numbers (``load``) and validation (``validate``)."""
