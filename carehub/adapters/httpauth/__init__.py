"""Access control at the HTTP edge: bearer JWTs and client certificates, one rule per route."""

from carehub.adapters.httpauth.middleware import Access, SecurityAudit, principal_of, refusal
from carehub.adapters.httpauth.rules import RULES, Rule, RuleTable

__all__ = ["RULES", "Access", "Rule", "RuleTable", "SecurityAudit", "principal_of", "refusal"]
