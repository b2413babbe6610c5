"""Why a model scored a person as it did: per-prediction contributions of each input column
(SHAP for LightGBM, coefficient x value for logistic regression) and their global summary."""

from rudikit.explain.contributions import (
    ExplainError,
    Explanation,
    explain,
    explanation_method,
    global_importance,
    remember_reference,
    top_reasons,
)

__all__ = ["ExplainError", "Explanation", "explain", "explanation_method", "global_importance",
           "remember_reference", "top_reasons"]
