"""The inference engine: onnxruntime sessions on one executor thread.

- Intra-op threads as configured, and `session.intra_op.allow_spinning = 0`: onnxruntime's worker
  threads otherwise busy-wait between runs and keep a Pi's cores at 100 % with idle cameras.
- One executor thread for every model: inference never runs on the event loop, and two cameras
  never fight over the same cores (frames queue instead; each camera keeps only its latest frame).
- A model is checked against its manifest's sha256 before it is loaded (a corrupt or swapped file
  is refused with the fix in the message), and warmed up once so the first real frame is not slow.
- Memory: every session allocates from one process-wide arena that is shrunk after each run, so a
  model's activations are resident only while it runs (`shared_arena`, `run_options`); glibc
  serves blocks of 128 KiB and more from their own mappings (`keep_heap_small`).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from gateway.inference.catalog import Manifest, ModelError

log = logging.getLogger("lintel.vision")
T = TypeVar("T")


class Model:
    """A loaded session and its manifest. `run` is called on the engine's thread only (the face
    lane's presentation-attack models too: its liveness check is a job there, never on the event
    loop: gateway/lanes/faces/entrance.py), so no session runs on two threads."""

    def __init__(self, manifest: Manifest, session: Any) -> None:
        self.manifest = manifest
        self.session = session
        self.run_options = run_options()
        self.input_name: str = session.get_inputs()[0].name
        self.output_names: list[str] = [o.name for o in session.get_outputs()]
        # symbolic height/width: the model takes any input size (our YOLOv4 build)
        self.free_shape = any(not isinstance(s, int) for s in session.get_inputs()[0].shape[2:])
        self.runs = 0

    def run(self, blob: np.ndarray) -> list[np.ndarray]:
        outputs = self.session.run(self.output_names, {self.input_name: blob}, self.run_options)
        self.runs += 1
        return list(outputs)


def session_options(threads: int, optimisation: str = "all") -> Any:
    """onnxruntime options. `optimisation` ("all", "extended", "basic") is the manifest's
    `graph_optimisation`: "all" adds x86's NCHWc re-layout, a second copy of the convolution
    weights (33 MB for the earlier dlib embedder) for speed; "extended" leaves it out."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    }[optimisation]
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    # Memory patterns pre-plan one block per input shape; off, YOLOv4-tiny's process is 11 MB
    # smaller after warm-up (140 vs 151 MB) at no measurable cost per frame.
    opts.enable_mem_pattern = False
    # Every session allocates from the one process-wide arena (`shared_arena`): the models run
    # one after another on the engine thread, so one model's freed activations serve the next.
    opts.add_session_config_entry("session.use_env_allocators", "1")
    opts.log_severity_level = 3
    return opts


_arena_lock = threading.Lock()
_arena_registered = False


def shared_arena() -> None:
    """Register (once per process) the CPU arena all sessions share, grown by what is asked.

    onnxruntime's default gives each session its own arena that doubles its region each time it
    grows and keeps its peak for good: three models kept three peaks of activations. One arena,
    grown by exactly the request (`kSameAsRequested`) and shrunk after every run (`run_options`),
    holds activations only while a model runs (bench/memory.py, README)."""
    global _arena_registered
    import onnxruntime as ort

    with _arena_lock:
        if _arena_registered:
            return
        memory = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        # max_mem 0 (no cap), extend strategy 1 (kSameAsRequested), default chunk sizes
        ort.create_and_register_allocator(memory, ort.OrtArenaCfg(0, 1, -1, -1))
        _arena_registered = True


def run_options() -> Any:
    """Run options that hand the arena's free regions back after each run. The next run faults
    its activations in again: per run on the 2-core x86 dev machine YOLOv4-tiny int8 22 → 27 ms,
    YuNet 640×384 7 → 11 ms, SFace 21 → 25 ms; the whole building gateway 17 → 19 % of one core,
    for 20 MB less resident than the shared arena alone (220 → 199 MB; bench/memory.py, README)."""
    import onnxruntime as ort

    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 128 * 1024


def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 -- glibc only (not musl, not macOS)
    except (OSError, AttributeError):
        return None
    return libc


def keep_heap_small() -> None:
    """Serve every allocation ≥ 128 KiB from its own mapping, returned to the system when freed.

    glibc raises its mmap threshold after the first large free (up to 32 MB), so a model load's
    protobuf and optimiser buffers and every frame's blobs afterwards land on the heap and stay
    there. Fixed at 128 KiB the whole building gateway is 210 MB after warm-up instead of 234 MB
    (1 MiB: 221 MB). The price is page faults on each frame's buffers: ~3 ms more per detection
    (~20 %), under 1 % of a core at the lanes' detection rates (bench/memory.py, README)."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def release_freed_memory() -> None:
    """Hand memory glibc keeps after frees back to the system (`malloc_trim`), after a load."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def load_model(manifest: Manifest, threads: int) -> Model:
    """Verify and load a model, then warm it up. Raises ModelError with the fix."""
    import onnxruntime as ort

    manifest.verify()
    keep_heap_small()
    shared_arena()
    started = time.perf_counter()
    try:
        session = ort.InferenceSession(
            str(manifest.file),
            session_options(threads, manifest.graph_optimisation),
            providers=["CPUExecutionProvider"],
        )
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelError(f"model {manifest.name!r}: onnxruntime cannot load {manifest.file}: {exc}") from exc
    shape = session.get_inputs()[0].shape
    want = [1, 3, manifest.input.height, manifest.input.width]
    if len(shape) != 4 or any(isinstance(s, int) and s != w for s, w in zip(shape, want, strict=True)):
        raise ModelError(
            f"model {manifest.name!r}: the ONNX input is {shape}, the manifest says {want}; fix input.width/"
            "height in the manifest"
        )
    load_s = time.perf_counter() - started
    blob = np.zeros(want, dtype=np.float32)
    started = time.perf_counter()
    session.run(None, {session.get_inputs()[0].name: blob}, run_options())
    warmup_ms = (time.perf_counter() - started) * 1000
    release_freed_memory()
    log.info(
        "model %s loaded in %.2f s (warm-up %.0f ms, %d threads)", manifest.name, load_s, warmup_ms, threads
    )
    return Model(manifest, session)


class InferenceEngine:
    """Owns the single inference thread. `submit` runs a function there from the event loop."""

    def __init__(self, threads: int = 1) -> None:
        keep_heap_small()  # before any model is loaded
        self.threads = threads
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lintel-infer")
        self._models: dict[str, Model] = {}
        self._lock = threading.Lock()

    def model(self, manifest: Manifest) -> Model:
        """Load (once) and return a model. Blocking: call it from the engine thread or at start."""
        with self._lock:
            if manifest.name not in self._models:
                self._models[manifest.name] = load_model(manifest, self.threads)
            return self._models[manifest.name]

    async def submit(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def models(self) -> list[Model]:
        return list(self._models.values())

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
