"""MLflow "model from code" for a textbench export: logged as the model's code, so loading it needs
only mlflow, torch and transformers (not textbench). Input: a DataFrame with a ``text`` column (or a
list of texts). Output: ``label`` (the dataset's label name) and ``prob_<label>`` per class."""

import mlflow
import pandas as pd
import torch
from mlflow.pyfunc import PythonModel


class TextbenchClassifier(PythonModel):
    def load_context(self, context):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = context.artifacts["model"]
        self.tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
        self.tokenizer.padding_side = "right"
        self.model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
        self.labels = [str(self.model.config.id2label[i]) for i in range(self.model.config.num_labels)]

    def predict(self, context, model_input: pd.DataFrame, params=None):  # the hint: MLflow asks for one
        texts = model_input["text"] if isinstance(model_input, pd.DataFrame) else model_input
        texts = [str(t) for t in texts]
        probs = []
        with torch.inference_mode():
            for start in range(0, len(texts), 256):
                batch = self.tokenizer(
                    texts[start : start + 256],
                    truncation=True,
                    padding=True,
                    max_length=self.tokenizer.model_max_length,
                    return_tensors="pt",
                    return_token_type_ids=False,
                )
                probs.append(torch.softmax(self.model(**batch).logits.float(), dim=-1))
        probs = torch.cat(probs).numpy() if probs else torch.zeros(0, len(self.labels)).numpy()
        out = pd.DataFrame({"label": [self.labels[i] for i in probs.argmax(axis=1)]})
        for i, name in enumerate(self.labels):
            out[f"prob_{name}"] = probs[:, i]
        return out


mlflow.models.set_model(TextbenchClassifier())
