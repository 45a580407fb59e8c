"""Accuracy as an `evaluate` module owned by the project.

`evaluate.load("accuracy")` fetches the metric script from the Hugging Face Hub, which fails
offline; `evaluate.load(<this folder>)` loads the same computation from disk.
"""

import datasets
import evaluate
from sklearn.metrics import accuracy_score

_DESCRIPTION = (
    "Accuracy = (TP + TN) / (TP + TN + FP + FN): the fraction of predictions equal to the reference."
)
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted labels.
    references (list of int): ground-truth labels.
    normalize (bool): fraction (True, default) or count (False) of correct predictions.
    sample_weight (list of float): optional per-example weights.
Returns:
    accuracy (float)
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
            ),
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        score = accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight)
        return {"accuracy": float(score)}
