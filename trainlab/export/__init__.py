"""``trainlab export``: a saved run as a torch.export program, an ONNX model or TorchScript, with a metadata file,
checked against the run at several batch sizes.  See docs/export.md.

The unit sits beside ``report`` (layer 8): it reads runs (``run``) and reuses ``predict``'s pieces (``data``,
``engine.outputs``), and nothing below it knows about it.
"""

from trainlab.export.check import CHECK_BATCH_SIZES, CheckResult
from trainlab.export.formats import FORMATS, ExportError, ExportFormat, Tolerance
from trainlab.export.graph import ExportedPredictor
from trainlab.export.save import ExportResult, default_path, export_run, predictor

__all__ = ["CHECK_BATCH_SIZES", "FORMATS", "CheckResult", "ExportError", "ExportFormat", "ExportResult",
           "ExportedPredictor", "Tolerance", "default_path", "export_run", "predictor"]
