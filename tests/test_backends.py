"""Every kNN backend gives the same neighbours, in the same order, as the torch backend and the naive reference."""
import numpy as np
import pytest
import torch

import vtalign as va
from naive_reference import naive_knn, tie_heavy
from vtalign.knn import available_backends, error_bound

BACKENDS = [b for b in ("torch", "faiss", "triton") if b in available_backends()]


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def cases(rng, small=False):
    """The inputs every backend must get right. ``small``: for interpreted Triton (seconds a search on a
    CPU), shapes that keep every kernel path the full ones take (traced: several 64-row and 64-column
    tiles with a tail; several feature tiles with a tail in the screen and the re-rank; a widened screen
    at KP = 128 for tie_heavy; at k = 1 a widened screen for constant) in about a third of the time."""
    yield "random", rng.normal(size=(70 if small else 130, 24)).astype(np.float32)
    yield "high_dim", rng.normal(size=(60, 100 if small else 1100)).astype(np.float32)  # torch: fp64 candidates
    yield "tie_heavy", tie_heavy(rng, 120, 8)
    yield "duplicated_block", np.repeat(rng.normal(size=(10, 6)).astype(np.float32), 7 if small else 12, axis=0)
    yield "constant", np.ones((40, 5), np.float32)
    per = 10 if small else 20
    yield "clustered", (np.repeat(rng.normal(size=(8, 16)), per, axis=0)
                        + 1e-4 * rng.normal(size=(8 * per, 16))).astype(np.float32)


@pytest.mark.parametrize("backend,k", [(b, k) for b in BACKENDS for k in (1, 7, 30)
                                       if not (b == "triton" and k == 7)])  # interpreted triton at k = 7:
def test_backend_equals_naive_reference(backend, k, rng):                   # tests/test_exactness.py
    for name, x in cases(rng, small=backend == "triton" and not torch.cuda.is_available()):
        np.testing.assert_array_equal(va.knn_indices(x, k, backend=backend), naive_knn(x, k), err_msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_k_equals_n_minus_1(backend, rng):
    x = rng.normal(size=(33, 4)).astype(np.float32)
    np.testing.assert_array_equal(va.knn_indices(x, 32, backend=backend), naive_knn(x, 32))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_backend_low_precision_inputs(backend, dtype, rng):
    x = torch.from_numpy(rng.normal(size=(90, 16)).astype(np.float32)).to(dtype)
    np.testing.assert_array_equal(va.knn_indices(x, 5, backend=backend), va.knn_indices(x, 5, backend="torch"))
    np.testing.assert_array_equal(va.knn_indices(x, 5, backend=backend), naive_knn(x.float().numpy(), 5))


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_queries_and_sweep(backend, rng):
    x, q = rng.normal(size=(70, 6)), rng.normal(size=(70, 6))
    np.testing.assert_array_equal(va.knn_indices(x, 4, backend=backend, queries=q),
                                  va.knn_indices(x, 4, backend="torch", queries=q))
    fx, fy = rng.normal(size=(50, 2, 8)), rng.normal(size=(50, 3, 5))
    fy[:, 2] = fx[:, 1, :5]
    ref = va.layer_sweep(fx, fy, k=5, backend="torch")
    got = va.layer_sweep(fx, fy, k=5, backend=backend)
    np.testing.assert_array_equal(got.scores, ref.scores)
    assert got.best == ref.best


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_rejects_bad_input_like_the_core(backend):
    with pytest.raises(ValueError, match="1 <= k < N"):
        va.knn_indices(np.ones((5, 3)), 5, backend=backend)
    with pytest.raises(ValueError, match="NaN"):
        va.mutual_knn(np.full((5, 3), np.nan), np.ones((5, 3)), 2, backend=backend)


def test_close_calls_are_decided_in_fp64(monkeypatch, rng):
    """Perturb the fp32 candidate similarities within the error bound: the answer must not change."""
    import vtalign.knn as knn

    x = (np.repeat(rng.normal(size=(6, 12)), 10, axis=0) + 1e-6 * rng.normal(size=(60, 12))).astype(np.float32)
    ref = va.knn_indices(x, 5)
    original = knn.TorchBackend.candidates  # knn's own classes and entry point: see test_exactness.py
    perturbed = []

    def noisy(self, xn, qn, m, exclude):
        sims, idx = original(self, xn, qn, m, exclude)
        noise = torch.from_numpy(rng.uniform(-1, 1, size=sims.shape)).to(sims.dtype) * error_bound(12, sims.dtype)
        perturbed.append(1)
        return sims + noise, idx

    monkeypatch.setattr(knn.TorchBackend, "candidates", noisy)
    np.testing.assert_array_equal(knn.knn_search(torch.from_numpy(x), None, 5, "torch").numpy(), ref)
    assert perturbed  # the perturbed candidates were the ones used


def test_unavailable_backend_is_a_clear_error(monkeypatch):
    import vtalign.alignment as alignment
    import vtalign.knn as knn

    # the copy of knn the public API uses, and knn itself (pytest may import a second copy for doctests)
    for namespace in (alignment.resolve_backend.__globals__, vars(knn)):
        monkeypatch.setitem(namespace, "available_backends", lambda: ["torch"])
    with pytest.raises(ValueError, match="not available here"):
        va.knn_indices(np.ones((5, 2)), 1, backend="faiss")
    with pytest.raises(ValueError, match="not available here"):
        knn.knn_search(torch.ones(5, 2), None, 1, "faiss")


def test_auto_backend_choice(monkeypatch):
    from vtalign.knn import AUTO_FAISS_MIN_N, resolve_backend

    assert resolve_backend("auto", 100).name == "torch"
    expected = "faiss" if "faiss" in available_backends() else "torch"
    assert resolve_backend("auto", AUTO_FAISS_MIN_N).name == expected
    on_gpu = "triton" if "triton" in available_backends() else "torch"  # measured fastest there
    assert resolve_backend("auto", AUTO_FAISS_MIN_N, torch.device("cuda")).name == on_gpu
    assert resolve_backend("auto", AUTO_FAISS_MIN_N, None, 2048).name == "torch"  # fp64 regime


def test_a_backend_is_chosen_once_and_travels_as_an_object(monkeypatch):
    """resolve_backend turns a name into one object per kind of device; an object passes through it (and
    the entry points) unchanged, and a name means the same object as before on every entry point."""
    import vtalign.knn as knn

    cpu, gpu = knn.resolve_backend("torch"), knn.resolve_backend("torch", device="cuda")
    assert isinstance(cpu, knn.TorchBackend) and not cpu.screened
    assert isinstance(gpu, knn.TorchGPUBackend) and gpu.screened
    assert knn.resolve_backend(cpu) is cpu and knn.resolve_backend(cpu, device="cuda") == gpu
    assert knn.resolve_backend(gpu, device="cpu") == cpu
    assert knn.BACKENDS == ("auto", "torch", "faiss", "triton")
    assert set(available_backends()) <= set(knn.BACKENDS[1:])
    for name in available_backends():
        b = knn.resolve_backend(name)
        assert b.name == name and knn.resolve_backend(b) is b
    # a layer sweep resolves "auto" once per space, never again below
    calls = []
    original = knn.resolve_backend
    monkeypatch.setattr(knn, "resolve_backend", lambda b, *a, **kw: calls.append(b) or original(b, *a, **kw))
    monkeypatch.setattr("vtalign.alignment.resolve_backend", knn.resolve_backend)
    fx = np.random.default_rng(0).normal(size=(30, 2, 4))
    va.layer_sweep(fx, fx, k=3)
    names = [c for c in calls if isinstance(c, str)]
    assert names == ["auto", "auto"]  # x's space and y's space; objects after that


# --------------------------------------------------------------------------- #
# No module-level mutable state in knn (issue 22, item 4)
# --------------------------------------------------------------------------- #
def _immutable(value) -> bool:
    """A value no search can change: a scalar, a dtype, None, a class (checked on its own where the module
    defines it), or a tuple / frozenset of such values."""
    if isinstance(value, (tuple, frozenset)):
        return all(_immutable(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, complex, str, bytes, torch.dtype, type))


def mutable_globals(module) -> list[str]:
    """Names in ``module`` (globals, and attributes of the classes it defines) holding state a call could
    change: anything but modules, functions, classes, typing forms and immutable values. A context
    variable counts unless it is unset here (its value then belongs to a caller's ``with`` block)."""
    import contextvars
    import types

    out = []
    for name, value in vars(module).items():
        code = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType)
        if name.startswith("__") or isinstance(value, code):
            continue
        if type(value).__module__ in ("typing", "__future__"):  # ClassVar, `from __future__ import annotations`
            continue
        if isinstance(value, contextvars.ContextVar):
            if value.get(None) is not None:
                out.append(name)
            continue
        if isinstance(value, type):
            if value.__module__ == module.__name__:
                out += [f"{name}.{a}" for a, v in vars(value).items() if not a.startswith("__")
                        and not isinstance(v, (types.FunctionType, classmethod, staticmethod, property, type))
                        and not _immutable(v) and type(v).__name__ != "member_descriptor"]
            continue
        if not _immutable(value):
            out.append(name)
    return out


def test_knn_has_no_module_level_mutable_state():
    """Stage timings, exact-decision counts and screen reports live in a SearchProfile the caller owns
    (``with knn.profile() as p``); backends are stateless objects. The check flags a planted dict, a list
    inside a tuple, a mutable class attribute and a context variable left set (the control)."""
    import contextvars
    import types

    import vtalign.knn as knn

    assert mutable_globals(knn) == []
    for name in knn.available_backends():
        assert not hasattr(knn.resolve_backend(name), "__dict__")  # no per-object state either
    with knn.profile() as p:
        va.knn_indices(np.eye(4), 1)
    assert knn._PROFILE.get() is None and p.exact_rows >= 0  # the profile went with the block

    fake = types.ModuleType("fake")
    fake.REPORT, fake.SHAPES, fake.OK = {}, (1, [2]), (1, "a", torch.float32)
    fake.Holder = type("Holder", (), {"__module__": "fake", "cache": [], "limit": 3})
    var = contextvars.ContextVar("v", default=None)
    fake.var = var
    var.set(object())
    assert sorted(mutable_globals(fake)) == ["Holder.cache", "REPORT", "SHAPES", "var"]
