"""Attack policies: who decides how each training sample is attacked."""
from .base import POLICIES, AttackPolicy, Feedback, create_policy, list_policies, register_policy
from .fixed import Fixed

__all__ = ["POLICIES", "AttackPolicy", "Feedback", "Fixed", "create_policy", "list_policies",
           "register_policy"]
