"""MLflow "models from code" entry point of the registered bundle (no pickle).

MLflow runs this file when something loads the registered model through pyfunc (the
MLflow UI's serving, ``mlflow.pyfunc.load_model``); GiamSat itself loads the bundle's
native files with :func:`models.registry.load_bundle`. ``set_model`` is what MLflow asks
such a file to call, so this module, and only this one, acts at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from models.bundle import ModelBundle


class BundleModel(PythonModel):
    """pyfunc view of a bundle: delay risk of rows of open-dossier features."""

    def load_context(self, context: Any) -> None:
        self.bundle = ModelBundle.load(Path(context.artifacts["bundle"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.Series:
        return pd.Series(self.bundle.delay.risk(model_input), index=model_input.index)


mlflow.models.set_model(BundleModel())
