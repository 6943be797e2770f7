"""The audit log on disk (Art. 20): the writer thread, the locked append shared with CLI processes,
verification, backup, the auditor's view and the syslog mirror. The record format and the chain
are in ``govgate.core.audit_chain``; ``docs/audit.md`` explains the whole design.
"""
