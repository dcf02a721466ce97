"""Attack policies: who decides how each training sample is attacked."""
from .base import POLICIES, AttackPolicy, Feedback, create_policy, list_policies, register_policy
from .ecas import CyclicEntropyECAS, mean_entropy
from .fixed import Fixed
from .las import LearnedLAS
from .saat import LossConstrainedSAAT

__all__ = ["POLICIES", "AttackPolicy", "CyclicEntropyECAS", "Feedback", "Fixed", "LearnedLAS", "LossConstrainedSAAT", "create_policy",
           "list_policies", "mean_entropy", "register_policy"]
