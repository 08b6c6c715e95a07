"""One call interface over every model format kd_keras writes.

`open_runtime(path)` returns an object that maps a float32 batch of raw
0-255 images to float32 outputs, whatever the file: a Keras `.keras` model,
a `.tflite` model run by LiteRT (`ai_edge_litert`; `tf.lite.Interpreter` is
deprecated), an `.onnx` model run by ONNX Runtime, or a SavedModel folder.
Quantised inputs and outputs (int8/uint8 TFLite models) are quantised and
dequantised here, so tasks score every format alike.

Only the chosen runtime is imported: a LiteRT or ONNX Runtime process does
not load TensorFlow, so its memory is what a device would see.

`tflite_bytes(model, ...)` is the one Keras -> TFLite conversion: the
exporter (`kd_keras.export.converters.tflite`) writes it with a parity
check, and the views pass runs a full-integer copy of a teacher in LiteRT.
"""

from __future__ import annotations

import os

import numpy as np

FORMATS = {".keras": "keras", ".tflite": "tflite", ".onnx": "onnx"}


def model_format(path: str) -> str:
    """"keras", "tflite", "onnx" or "saved_model" (a folder with saved_model.pb)."""
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            return "saved_model"
        raise ValueError(f"folder {path!r} is not a SavedModel (no saved_model.pb); pass a .keras, .tflite "
                         f"or .onnx file or a SavedModel folder.")
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise ValueError(f"cannot tell the format of {path!r} from its extension {ext or '(none)'!r}; "
                         f"expected one of {', '.join(FORMATS)} or a SavedModel folder.")
    return FORMATS[ext]


def file_size(path: str) -> int:
    """Bytes of a model file, or of every file in a SavedModel folder."""
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
    return os.path.getsize(path)


class Runtime:
    """A loaded model: `runtime(x)` maps a float32 NHWC batch to float32 outputs.

    Attributes:
        format: "keras", "tflite", "onnx" or "saved_model".
        input_shape: one input image's shape, None for a free dimension.
        output_rank: rank of the batched output (2: logits, 4: dense maps).
        output_channels: size of the last output dimension.
        batch: the batch size the file fixes (an ONNX export traced at
            batch 1, say), None where any batch runs.
        engine: what runs it, for reports (e.g. "LiteRT 2 threads, XNNPACK").
    """

    format = ""
    engine = ""
    batch = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class KerasRuntime(Runtime):
    """A Keras model (a `.keras` path or a loaded model), run through a traced `tf.function`."""

    format = "keras"

    def __init__(self, model, threads: int | None = None):
        import tensorflow as tf

        if threads:
            _tf_threads(threads)
        if isinstance(model, (str, os.PathLike)):
            if not os.path.exists(model):
                raise FileNotFoundError(f"model {os.fspath(model)!r} does not exist; check the path.")

            model = load_trained(os.fspath(model))
        self.model = model
        self.input_shape = tuple(self.model.inputs[0].shape[1:])
        self.output_rank = len(self.model.outputs[0].shape)
        self.output_channels = self.model.outputs[0].shape[-1]
        self._fn = tf.function(self._forward, reduce_retracing=True)
        self.engine = f"Keras/TensorFlow {tf.__version__}, {_threads(threads)}"

    def _forward(self, x):
        return self.model(x, training=False)

    def __call__(self, x):
        return np.asarray(self._fn(np.asarray(x, np.float32)), np.float32)


class SavedModelRuntime(Runtime):
    format = "saved_model"

    def __init__(self, path: str, threads: int | None = None):
        import tensorflow as tf

        if threads:
            _tf_threads(threads)
        try:
            loaded = tf.saved_model.load(path)
        except Exception as e:  # TF raises several types for a bad folder
            raise ValueError(f"cannot load SavedModel {path!r} ({type(e).__name__}: {_first_line(e)}).") from None
        self._keep = loaded
        signatures = dict(getattr(loaded, "signatures", {}) or {})
        if not signatures:
            raise ValueError(f"SavedModel {path!r} has no serving signature, so there is nothing to call; export it "
                             f"with model.export(path) (Keras) or tf.saved_model.save(module, path, "
                             f"signatures=...).")
        name = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
        self._fn = signatures[name]
        spec = list(self._fn.structured_input_signature[1].values())[0]
        out = list(self._fn.structured_outputs.values())[0]
        self._input_name = list(self._fn.structured_input_signature[1])[0]
        self.input_shape = tuple(spec.shape[1:])
        self.batch = spec.shape[0] if spec.shape.rank else None
        self.output_rank, self.output_channels = len(out.shape), out.shape[-1]
        self.engine = f"TensorFlow {tf.__version__} SavedModel, {_threads(threads)}"

    def __call__(self, x):
        out = self._fn(**{self._input_name: np.asarray(x, np.float32)})
        return np.asarray(list(out.values())[0], np.float32)


class LiteRTRuntime(Runtime):
    """A `.tflite` model in `ai_edge_litert.interpreter.Interpreter`.

    Args:
        path: the `.tflite` file.
        threads: interpreter threads (XNNPACK uses them too).
        xnnpack: apply the XNNPACK CPU delegate (LiteRT's default); False
            runs the built-in reference kernels.
    """

    format = "tflite"

    def __init__(self, path: str, threads: int | None = 2, xnnpack: bool = True):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.BUILTIN if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self.interpreter = Interpreter(model_path=path, num_threads=threads, experimental_op_resolver_type=resolver)
        except Exception as e:  # LiteRT raises ValueError/RuntimeError for a bad file
            raise ValueError(f"cannot load TFLite model {path!r} ({type(e).__name__}: {_first_line(e)}).") from None
        self._in = self.interpreter.get_input_details()[0]
        out = self.interpreter.get_output_details()[0]
        self.input_shape = tuple(None if d < 0 else int(d) for d in self._in["shape_signature"][1:])
        self.output_rank, self.output_channels = len(out["shape_signature"]), int(out["shape_signature"][-1])
        self.input_dtype = np.dtype(self._in["dtype"]).name
        self.input_quantization = ""
        if self.input_dtype != "float32":
            scale, zero = self._in["quantization"]
            info = np.iinfo(self._in["dtype"])
            self.input_quantization = (f"the file takes {self.input_dtype} input (scale {scale:.6g}, zero point "
                                       f"{zero}: values {(info.min - zero) * scale:.4g} to "
                                       f"{(info.max - zero) * scale:.4g}); the adapted images are quantised through "
                                       f"it (read from the file)")
        self._shape = None
        self.engine = f"LiteRT, {_threads(threads)}, {'XNNPACK' if xnnpack else 'reference kernels'}"

    def __call__(self, x):
        x = np.asarray(x, np.float32)
        it = self.interpreter
        if self._shape != x.shape:
            it.resize_tensor_input(self._in["index"], list(x.shape), strict=False)
            it.allocate_tensors()
            self._shape = x.shape
            self._out = it.get_output_details()[0]
        it.set_tensor(self._in["index"], _quantize(x, self._in))
        it.invoke()
        return _dequantize(it.get_tensor(self._out["index"]), self._out)


class OnnxRuntime(Runtime):
    """An `.onnx` model in ONNX Runtime (CPU here; CUDA/TensorRT providers where installed)."""

    format = "onnx"

    def __init__(self, path: str, threads: int | None = 2, providers=None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: ONNX Runtime's warnings are its own, in colour, on stderr
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        providers = list(providers or ["CPUExecutionProvider"])
        missing = [p for p in providers if p not in ort.get_available_providers()]
        if missing:
            raise ValueError(f"ONNX Runtime here has no {', '.join(missing)} (available: "
                             f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu for the CUDA "
                             f"and TensorRT providers, or use CPUExecutionProvider.")
        try:
            self.session = ort.InferenceSession(path, options, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types
            raise ValueError(f"cannot load ONNX model {path!r} ({type(e).__name__}: {_first_line(e)}).") from None
        i, o = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self._input_name = i.name
        self.input_shape = tuple(d if isinstance(d, int) else None for d in i.shape[1:])
        self.batch = i.shape[0] if i.shape and isinstance(i.shape[0], int) else None
        self.output_rank = len(o.shape)
        self.output_channels = o.shape[-1] if isinstance(o.shape[-1], int) else None
        self.engine = f"ONNX Runtime {ort.__version__} ({', '.join(self.session.get_providers())}), {_threads(threads)}"

    def __call__(self, x):
        return np.asarray(self.session.run(None, {self._input_name: np.asarray(x, np.float32)})[0], np.float32)


RUNTIMES = {"keras": KerasRuntime, "tflite": LiteRTRuntime, "onnx": OnnxRuntime, "saved_model": SavedModelRuntime}


def tflite_bytes(model, quantize: str = "none", calibration=None, io_type: str = "float") -> bytes:
    """A Keras model as a TFLite flatbuffer, through its SavedModel export; the converter's errors propagate.

    Args:
        model: the Keras model.
        quantize: "none", "fp16", "dynamic" or "int8" (full integer).
        calibration: int8: a list of float32 input arrays (HxWxC), the representative dataset.
        io_type: int8: "float" keeps float input and output; "int8"/"uint8" makes them integer.
    """
    import tempfile

    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="kd_keras_sm_") as sm:
        model.export(sm, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(sm)
        if quantize != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "fp16":
            converter.target_spec.supported_types = [tf.float16]
        if quantize == "int8":
            converter.representative_dataset = lambda: ([x[None]] for x in calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if io_type != "float":
                converter.inference_input_type = converter.inference_output_type = getattr(tf, io_type)
        return converter.convert()


def open_runtime(path: str, threads: int | None = 2, **options) -> Runtime:
    """Loads any kd_keras model file for inference.

    Args:
        path: `.keras`, `.tflite`, `.onnx` file or SavedModel folder.
        threads: CPU threads of the runtime.
        **options: runtime options (`xnnpack` for LiteRT, `providers` for
            ONNX Runtime).

    Raises:
        FileNotFoundError: no such file.
        ValueError: an unknown format, or a file that does not load.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"model {path!r} does not exist; check the path.")
    runtime = RUNTIMES[model_format(path)](path, threads, **options)
    runtime.path = path
    return runtime


def infer_task(runtime: Runtime) -> str:
    """The task of a model from its output: logits, a 1-channel map or an image."""
    if runtime.output_rank == 2:
        return "classification"
    if runtime.output_rank == 4 and runtime.output_channels == 1:
        return "edge_detection"
    if runtime.output_rank == 4 and runtime.output_channels == 3:
        return "super_resolution"
    raise ValueError(f"cannot tell the task of {getattr(runtime, 'path', 'the model')!r} from its output "
                     f"(rank {runtime.output_rank}, {runtime.output_channels} channels); pass --task.")


def sr_scale(runtime: Runtime) -> int:
    """The upscaling factor of a super-resolution model, from one probe call."""
    h, w = (d or 8 for d in runtime.input_shape[:2])
    out = runtime(np.zeros((1, h, w, runtime.input_shape[-1] or 3), np.float32))
    return int(round(out.shape[1] / h))


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return x
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if np.dtype(detail["dtype"]) == np.float32:
        return y.copy()
    scale, zero = detail["quantization"]
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


def _tf_threads(threads: int) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TF already initialised in this process: keep its pool
        pass


def _threads(n) -> str:
    return "default threads" if not n else f"{n} thread{'s' if n != 1 else ''}"


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else "")[:160]


def load_trained(path: str):
    """Loads a saved model with a one-line error for a missing or bad file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file {path!r} does not exist; train one with the recipe first, "
                                f"or pass --model PATH.")
    from kd_keras.models.registry import corrupt_model_file

    corrupt = corrupt_model_file(path)
    if corrupt:
        raise ValueError(f"model file {path!r} {corrupt}; pass a model saved with model.save(\"model.keras\").")
    try:
        import keras

        import kd_keras.models  # noqa: F401  (registers the custom layers)

        return keras.models.load_model(path, compile=False)
    except Exception as e:  # Keras raises several types for a bad file
        from kd_keras.models.files import missing_object

        missing = missing_object(" ".join(str(e).split()))
        if missing:
            raise ValueError(f"model file {path!r} {missing}") from None
        raise ValueError(f"cannot load model {path!r} ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
                         f"pass a .keras file saved by a kd_keras recipe.") from None
