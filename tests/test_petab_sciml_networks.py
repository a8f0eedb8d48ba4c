"""PEtab SciML neural networks (``jaxcell.neural``): YAML graph -> equinox module.

* the shipped sample of the PEtab SciML test suite (``tests/data/petab-sciml``, MIT,
  commit 366a3da) runs in every test run; every ``ml_model_import`` case of
  ``../shared/data/petab-sciml`` runs when it exists (a few in the default run, all in
  the slow run). The pass rule and the dropout tolerances are in
  ``benchmarks/_sciml_networks.py``;
* layers the suite does not exercise with non-default arguments (strides, padding,
  dilation, groups, ``ceil_mode``, ``count_include_pad``, padding modes, transposed
  convolutions, adaptive max pooling) against direct numpy transcriptions of PyTorch's
  definitions;
* gradients against central finite differences, write/read round trips, bad files.
"""

import sys
from pathlib import Path

import equinox as eqx
import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import central_difference

from jaxcell import ModelError
from jaxcell.neural import (
    Network,
    NetworkFormatError,
    init_network,
    load_network,
    network_arrays,
    network_to_yaml,
    read_hdf5_arrays,
    read_network_arrays,
    with_network_arrays,
    write_network,
    write_network_arrays,
)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import _sciml_networks as lib  # noqa: E402

SAMPLE = REPO / "tests" / "data" / "petab-sciml" / "ml_model_import"
SUITE = Path(__file__).resolve().parents[2] / "shared" / "data" / "petab-sciml"
SUITE_CASES = SUITE / "test_cases" / "ml_model_import"
#: shared cases in the default run (beyond the shipped sample): transposed conv, LP and
#: adaptive pooling, instance and layer norm, AlphaDropout
FAST_SUITE = ("008", "015", "017", "020", "047", "050")


def _case_ids(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if (p / "solutions.yaml").exists())


def _check_case(case_dir: Path) -> None:
    result = lib.run_ml_model_case(case_dir)
    assert result["status"] == "pass", (case_dir.name, result)
    assert np.isfinite(result["out_error"])


@pytest.mark.parametrize("case", _case_ids(SAMPLE))
def test_shipped_sample_case(case):
    _check_case(SAMPLE / case)


def _suite_params():
    if not SUITE_CASES.is_dir():
        return [
            pytest.param(
                None,
                marks=pytest.mark.skip(reason=f"PEtab SciML test suite not found at {SUITE}"),
            )
        ]
    shipped = set(_case_ids(SAMPLE))
    params = []
    for case in _case_ids(SUITE_CASES):
        if case in shipped:
            continue
        marks = () if case in FAST_SUITE else (pytest.mark.slow,)
        params.append(pytest.param(case, marks=marks, id=case))
    return params


@pytest.mark.parametrize("case", _suite_params())
def test_suite_case(case):
    _check_case(SUITE_CASES / case)


def test_dropout_tolerance_comes_from_the_generator():
    case = lib.read_case(SAMPLE / "021")
    assert case.dropout == 40000 and case.atol == 1e-2 and case.rtol == 0.0
    case = lib.read_case(SAMPLE / "002")
    assert case.dropout is None and case.atol == case.rtol == lib.DEFAULT_TOL


# ---------------------------------------------------------------- building networks


def _net(layers, forward, inputs=("x",)) -> dict:
    """A network mapping from (layer_id, type, args) and (name, op, target, args, kwargs)."""
    return {
        "nn_model_id": "net",
        "inputs": [{"input_id": i} for i in inputs],
        "layers": [{"layer_id": i, "layer_type": t, "args": a} for i, t, a in layers],
        "forward": [
            {"name": i, "op": "placeholder", "target": i, "args": [], "kwargs": {}} for i in inputs
        ]
        + [
            {"name": n, "op": o, "target": t, "args": list(a), "kwargs": dict(k)}
            for n, o, t, a, k in forward
        ],
    }


def _single(layer_type, args, n_inputs=1) -> Network:
    names = [f"x{i}" for i in range(n_inputs)]
    return load_network(
        _net(
            [("l", layer_type, args)],
            [("l", "call_module", "l", names, {}), ("output", "output", "output", ["l"], {})],
            inputs=names,
        )
    )


def _random_arrays(net: Network, seed: int = 0) -> Network:
    rng = np.random.default_rng(seed)
    arrays = {}
    for layer_id, layer in net.layers.items():
        for name, shape in layer.array_shapes().items():
            if name.startswith("running"):
                continue
            arrays[f"{layer_id}.{name}"] = rng.normal(size=shape)
    return with_network_arrays(net, arrays)


# ------------------------------------------------ numpy transcriptions of PyTorch layers


def _conv_ref(x, w, b, stride, pads, dilation, groups):
    n = x.ndim - 2
    xp = np.pad(x, [(0, 0), (0, 0)] + list(pads))
    n_out, cg = w.shape[:2]
    kernel = w.shape[2:]
    size = [
        (xp.shape[2 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(n)
    ]
    y = np.zeros((x.shape[0], n_out, *size))
    og = n_out // groups
    for k in np.ndindex(*kernel):
        sl = tuple(
            slice(k[i] * dilation[i], k[i] * dilation[i] + stride[i] * (size[i] - 1) + 1, stride[i])
            for i in range(n)
        )
        patch = xp[(slice(None), slice(None)) + sl]
        for g in range(groups):
            wk = w[g * og : (g + 1) * og][(slice(None), slice(None)) + k]
            y[:, g * og : (g + 1) * og] += np.einsum(
                "nc...,oc->no...", patch[:, g * cg : (g + 1) * cg], wk
            )
    return y + b.reshape(-1, *[1] * n)


def _conv_transpose_ref(x, w, b, stride, padding, output_padding, dilation, groups):
    # scatter form: every input element adds weight * value at i * stride + k * dilation
    n = x.ndim - 2
    size_in, kernel = x.shape[2:], w.shape[2:]
    og, cg = w.shape[1], x.shape[1] // groups
    full = [
        (size_in[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1 + output_padding[i]
        for i in range(n)
    ]
    y = np.zeros((x.shape[0], og * groups, *full))
    for k in np.ndindex(*kernel):
        sl = tuple(
            slice(
                k[i] * dilation[i], k[i] * dilation[i] + stride[i] * (size_in[i] - 1) + 1, stride[i]
            )
            for i in range(n)
        )
        for g in range(groups):
            wk = w[g * cg : (g + 1) * cg][(slice(None), slice(None)) + k]
            contribution = np.einsum("nc...,co->no...", x[:, g * cg : (g + 1) * cg], wk)
            y[(slice(None), slice(g * og, (g + 1) * og)) + sl] += contribution
    crop = tuple(slice(padding[i], full[i] - padding[i]) for i in range(n))
    return y[(slice(None), slice(None)) + crop] + b.reshape(-1, *[1] * n)


def _pool_size(length, k, s, p, d, ceil_mode):
    # the formula of the torch.nn.MaxPool/AvgPool docs; in ceil mode a window may not
    # start in the right padding
    span = length + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= length + p:
        out -= 1
    return out


def _pool_ref(
    x,
    kind,
    kernel,
    stride,
    padding,
    dilation=None,
    ceil_mode=False,
    count_include_pad=True,
    divisor=None,
):
    n = len(kernel)
    dilation = dilation or (1,) * n
    spatial = x.shape[-n:]
    sizes = [
        _pool_size(spatial[i], kernel[i], stride[i], padding[i], dilation[i], ceil_mode)
        for i in range(n)
    ]
    y = np.zeros(x.shape[:-n] + tuple(sizes))
    for o in np.ndindex(*sizes):
        if kind == "max":
            idx = [
                [o[i] * stride[i] - padding[i] + j * dilation[i] for j in range(kernel[i])]
                for i in range(n)
            ]
            idx = [[v for v in ix if 0 <= v < spatial[i]] for i, ix in enumerate(idx)]
            window = x[(...,) + np.ix_(*idx)]
            y[(...,) + o] = window.reshape(x.shape[:-n] + (-1,)).max(-1)
            continue
        start = [o[i] * stride[i] - padding[i] for i in range(n)]
        end = [min(start[i] + kernel[i], spatial[i] + padding[i]) for i in range(n)]
        pool = np.prod([e - s for s, e in zip(start, end)])
        start = [max(s, 0) for s in start]
        end = [min(e, spatial[i]) for i, e in enumerate(end)]
        window = x[(...,) + tuple(slice(s, e) for s, e in zip(start, end))]
        total = window.reshape(x.shape[:-n] + (-1,)).sum(-1)
        count = np.prod([e - s for s, e in zip(start, end)])
        y[(...,) + o] = total / (divisor or (pool if count_include_pad else count))
    return y


def _adaptive_ref(x, out, kind):
    n = len(out)
    spatial = x.shape[-n:]
    y = np.zeros(x.shape[:-n] + tuple(out))
    for o in np.ndindex(*out):
        sl = tuple(
            slice(
                int(np.floor(o[i] * spatial[i] / out[i])),
                int(np.ceil((o[i] + 1) * spatial[i] / out[i])),
            )
            for i in range(n)
        )
        window = x[(...,) + sl].reshape(x.shape[:-n] + (-1,))
        y[(...,) + o] = window.max(-1) if kind == "max" else window.mean(-1)
    return y


_forward = eqx.filter_jit(lambda net, *xs: net(*xs))


@pytest.mark.parametrize(
    "n, args",
    [
        (1, dict(stride=2, padding=1, dilation=2, groups=2)),
        (1, dict(padding="same", dilation=1, kernel_size=4)),
        (1, dict(padding=2, padding_mode="reflect")),
        (1, dict(padding=2, padding_mode="replicate", bias=False)),
        (2, dict(stride=(2, 1), padding=(1, 2), padding_mode="circular")),
        (2, dict(stride=1, padding="valid", dilation=(1, 2), groups=3, kernel_size=(2, 3))),
        (3, dict(stride=2, padding=1, groups=1)),
    ],
)
def test_conv_matches_pytorch_definition(n, args):
    rng = np.random.default_rng(1)
    groups = args.get("groups", 1)
    base = dict(
        in_channels=2 * groups if groups > 1 else 3,
        out_channels=2 * groups if groups > 1 else 4,
        kernel_size=3,
    )
    base.update(args)
    net = _random_arrays(_single(f"Conv{n}d", base))
    layer = net.layers["l"]
    x = rng.normal(size=(2, base["in_channels"]) + (7, 8, 6)[:n])
    k = (base["kernel_size"],) * n if isinstance(base["kernel_size"], int) else base["kernel_size"]
    d = (
        (base.get("dilation", 1),) * n
        if isinstance(base.get("dilation", 1), int)
        else base["dilation"]
    )
    s = (base.get("stride", 1),) * n if isinstance(base.get("stride", 1), int) else base["stride"]
    pad = base.get("padding", 0)
    if pad == "same":
        pads = [(dd * (kk - 1) // 2, dd * (kk - 1) - dd * (kk - 1) // 2) for dd, kk in zip(d, k)]
    elif pad == "valid":
        pads = [(0, 0)] * n
    else:
        pads = [(p, p) for p in ((pad,) * n if isinstance(pad, int) else pad)]
    mode = base.get("padding_mode", "zeros")
    if mode != "zeros":
        x_in = np.pad(
            x,
            [(0, 0), (0, 0)] + pads,
            mode={"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode],
        )
        pads = [(0, 0)] * n
    else:
        x_in = x
    bias = np.zeros(base["out_channels"]) if layer.bias is None else np.asarray(layer.bias)
    ref = _conv_ref(x_in, np.asarray(layer.weight), bias, s, pads, d, groups)
    np.testing.assert_allclose(_forward(net, x), ref, rtol=1e-12, atol=1e-12)
    # unbatched input, as PyTorch accepts it
    np.testing.assert_allclose(_forward(net, x[0]), ref[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "n, args",
    [
        (1, dict(stride=2, padding=1, output_padding=1, dilation=1, groups=1)),
        (1, dict(stride=3, padding=2, output_padding=2, dilation=2, groups=2)),
        (2, dict(stride=(2, 1), padding=(0, 1), output_padding=(1, 0), groups=1)),
        (3, dict(stride=2, padding=1, groups=1, bias=False)),
    ],
)
def test_conv_transpose_matches_pytorch_definition(n, args):
    rng = np.random.default_rng(2)
    groups = args.get("groups", 1)
    base = dict(in_channels=2 * groups, out_channels=3 * groups, kernel_size=3, **args)
    net = _random_arrays(_single(f"ConvTranspose{n}d", base))
    layer = net.layers["l"]
    assert layer.weight.shape == (2 * groups, 3) + (3,) * n
    x = rng.normal(size=(2, base["in_channels"]) + (5, 4, 3)[:n])

    def tup(v):
        return (v,) * n if isinstance(v, int) else v

    bias = np.zeros(base["out_channels"]) if layer.bias is None else np.asarray(layer.bias)
    ref = _conv_transpose_ref(
        x,
        np.asarray(layer.weight),
        bias,
        tup(args["stride"]),
        tup(args["padding"]),
        tup(args.get("output_padding", 0)),
        tup(args.get("dilation", 1)),
        groups,
    )
    np.testing.assert_allclose(_forward(net, x), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "layer_type, args, ref_kwargs",
    [
        (
            "MaxPool1d",
            dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True),
            dict(kind="max", kernel=(3,), stride=(2,), padding=(1,), dilation=(2,), ceil_mode=True),
        ),
        (
            "MaxPool2d",
            dict(kernel_size=(2, 3), stride=None, padding=(1, 1), ceil_mode=False),
            dict(kind="max", kernel=(2, 3), stride=(2, 3), padding=(1, 1)),
        ),
        (
            "AvgPool1d",
            dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
            dict(kind="avg", kernel=(3,), stride=(2,), padding=(1,), ceil_mode=True),
        ),
        (
            "AvgPool2d",
            dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
            dict(
                kind="avg",
                kernel=(3, 3),
                stride=(2, 2),
                padding=(1, 1),
                ceil_mode=True,
                count_include_pad=False,
            ),
        ),
        (
            "AvgPool2d",
            dict(kernel_size=2, stride=1, divisor_override=3),
            dict(kind="avg", kernel=(2, 2), stride=(1, 1), padding=(0, 0), divisor=3),
        ),
        (
            "AvgPool3d",
            dict(kernel_size=2, padding=1, ceil_mode=True),
            dict(kind="avg", kernel=(2, 2, 2), stride=(2, 2, 2), padding=(1, 1, 1), ceil_mode=True),
        ),
    ],
)
def test_pooling_matches_pytorch_definition(layer_type, args, ref_kwargs):
    n = int(layer_type[-2])
    x = np.random.default_rng(3).normal(size=(2, 3) + (7, 6, 5)[:n])
    net = _single(layer_type, args)
    np.testing.assert_allclose(_forward(net, x), _pool_ref(x, **ref_kwargs), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("n, out", [(1, (4,)), (2, (3, 5)), (3, (2, 3, 4))])
def test_adaptive_pooling_matches_pytorch_definition(kind, n, out):
    x = np.random.default_rng(4).normal(size=(2, 3) + (7, 6, 5)[:n])
    layer_type = f"Adaptive{'Max' if kind == 'max' else 'Avg'}Pool{n}d"
    net = _single(layer_type, {"output_size": list(out)})
    np.testing.assert_allclose(_forward(net, x), _adaptive_ref(x, out, kind), rtol=1e-12)


def test_lp_pool_is_a_p_norm_over_windows():
    x = np.random.default_rng(5).normal(size=(1, 2, 6, 4))
    net = _single("LPPool2d", {"norm_type": 3, "kernel_size": 2})
    ref = _pool_ref(x**3, kind="avg", kernel=(2, 2), stride=(2, 2), padding=(0, 0)) * 4
    expected = np.sign(ref) * np.abs(ref) ** (1 / 3)
    out = np.asarray(_forward(net, x))
    # PyTorch raises a negative sum to 1/p and gets NaN; so do we
    ok = ref >= 0
    np.testing.assert_allclose(out[ok], expected[ok], rtol=1e-12)
    assert np.all(np.isnan(out[~ok]))


def test_norm_layers_follow_pytorch():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(4, 3, 5))
    bn = _random_arrays(_single("BatchNorm1d", {"num_features": 3}))
    w, b = np.asarray(bn.layers["l"].weight), np.asarray(bn.layers["l"].bias)
    mean, var = x.mean((0, 2), keepdims=True), x.var((0, 2), keepdims=True)
    ref = (x - mean) / np.sqrt(var + 1e-5) * w[:, None] + b[:, None]
    np.testing.assert_allclose(_forward(bn, x), ref, rtol=1e-12)
    # running statistics (e.g. from an HDF5 file) switch to evaluation mode
    rm, rv = rng.normal(size=3), rng.uniform(0.5, 2, size=3)
    bn_eval = with_network_arrays(bn, {"l.running_mean": rm, "l.running_var": rv})
    ref = (x - rm[:, None]) / np.sqrt(rv[:, None] + 1e-5) * w[:, None] + b[:, None]
    np.testing.assert_allclose(_forward(bn_eval, x), ref, rtol=1e-12)
    assert set(network_arrays(bn_eval)) == {"l.weight", "l.bias", "l.running_mean", "l.running_var"}

    inorm = _single("InstanceNorm1d", {"num_features": 3})
    assert network_arrays(inorm) == {}
    ref = (x - x.mean(2, keepdims=True)) / np.sqrt(x.var(2, keepdims=True) + 1e-5)
    np.testing.assert_allclose(_forward(inorm, x), ref, rtol=1e-12)
    np.testing.assert_allclose(_forward(inorm, x[0]), ref[0], rtol=1e-12)

    ln = _random_arrays(_single("LayerNorm", {"normalized_shape": [3, 5], "bias": False}))
    assert set(network_arrays(ln)) == {"l.weight"}
    mean, var = x.mean((1, 2), keepdims=True), x.var((1, 2), keepdims=True)
    ref = (x - mean) / np.sqrt(var + 1e-5) * np.asarray(ln.layers["l"].weight)
    np.testing.assert_allclose(_forward(ln, x), ref, rtol=1e-12)


def test_dropout_is_identity_without_key_and_pytorch_like_with_one():
    x = jnp.ones((50, 40, 3))
    net = _single("Dropout2d", {"p": 0.25})
    np.testing.assert_array_equal(net(x), x)
    y = np.asarray(net(x, key=jax.random.key(0)))
    # Dropout2d on (N, C, L) drops whole channels and scales the rest by 1 / (1 - p)
    assert set(np.unique(y)) == {0.0, 1 / 0.75}
    assert np.all(y == y[:, :, :1])
    assert abs(np.mean(y == 0) - 0.25) < 0.03
    # AlphaDropout keeps zero mean and unit variance of standard normal inputs
    z = jax.random.normal(jax.random.key(1), (200_000,))
    y = np.asarray(_single("AlphaDropout", {"p": 0.3})(z, key=jax.random.key(2)))
    assert abs(y.mean()) < 0.01 and abs(y.var() - 1) < 0.01


def test_activations_and_graph_functions():
    x = np.linspace(-4, 4, 9)
    net = load_network(
        _net(
            [("act", "Softplus", {"beta": 2.0})],
            [
                ("a", "call_function", "hardswish", ["x"], {}),
                ("b", "call_function", "gelu", ["x"], {}),
                ("c", "call_module", "act", ["x"], {}),
                ("d", "call_function", "stack", [["a", "b", "c"]], {"dim": 0}),
                ("n", "call_method", "size", ["d", 1], {}),
                ("e1", "call_method", "view", ["d", "n", 3], {}),
                ("e", "call_method", "view", ["e1", 27], {}),
                ("f", "call_function", "softmax", ["e"], {"dim": -1}),
                ("output", "output", "output", [["f", "d"]], {}),
            ],
        )
    )
    f, d = _forward(net, x)
    from scipy.special import erf, softmax

    np.testing.assert_allclose(d[0], x * np.clip(x + 3, 0, 6) / 6, rtol=1e-12)
    np.testing.assert_allclose(d[1], 0.5 * x * (1 + erf(x / np.sqrt(2))), rtol=1e-12)
    np.testing.assert_allclose(d[2], np.log1p(np.exp(2 * x)) / 2, rtol=1e-12)
    np.testing.assert_allclose(f, softmax(np.ravel(d)), rtol=1e-12)


_ACTIVATION_FORMULAS = {
    # the formulas of the torch.nn.functional documentation
    "relu6": ({}, lambda x: np.minimum(np.maximum(x, 0), 6)),
    "hardtanh": ({"min_val": -0.5, "max_val": 2.0}, lambda x: np.clip(x, -0.5, 2.0)),
    "hardsigmoid": ({}, lambda x: np.where(x <= -3, 0, np.where(x >= 3, 1, x / 6 + 0.5))),
    "selu": (
        {},
        lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)),
    ),
    "elu": ({"alpha": 0.7}, lambda x: np.where(x > 0, x, 0.7 * np.expm1(x))),
    "celu": ({"alpha": 2.0}, lambda x: np.maximum(0, x) + np.minimum(0, 2.0 * np.expm1(x / 2.0))),
    "silu": ({}, lambda x: x / (1 + np.exp(-x))),
    "mish": ({}, lambda x: x * np.tanh(np.log1p(np.exp(x)))),
    "leaky_relu": ({"negative_slope": 0.2}, lambda x: np.where(x >= 0, x, 0.2 * x)),
    "logsigmoid": ({}, lambda x: -np.log1p(np.exp(-x))),
    "sigmoid": ({}, lambda x: 1 / (1 + np.exp(-x))),
    "tanhshrink": ({}, lambda x: x - np.tanh(x)),
    "softsign": ({}, lambda x: x / (1 + np.abs(x))),
    "softplus": (
        {"beta": 0.5, "threshold": 1.0},
        lambda x: np.where(0.5 * x > 1.0, x, np.log1p(np.exp(0.5 * x)) / 0.5),
    ),
    "log_softmax": ({"dim": 0}, lambda x: x - np.log(np.sum(np.exp(x)))),
}


@pytest.mark.parametrize("name", sorted(_ACTIVATION_FORMULAS))
def test_activation_formulas(name):
    kwargs, formula = _ACTIVATION_FORMULAS[name]
    x = np.linspace(-5, 5, 23)
    net = load_network(
        _net(
            [],
            [
                ("a", "call_function", name, ["x"], kwargs),
                ("output", "output", "output", ["a"], {}),
            ],
        )
    )
    np.testing.assert_allclose(net(x), formula(x), rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- gradients


def _flat_loss(net: Network, x):
    arrays = network_arrays(net)
    names = sorted(arrays)
    shapes = [arrays[n].shape for n in names]
    flat0 = np.concatenate([np.ravel(arrays[n]) for n in names])

    def unflatten(flat):
        out, i = {}, 0
        for name, shape in zip(names, shapes):
            size = int(np.prod(shape))
            out[name] = jnp.reshape(flat[i : i + size], shape)
            i += size
        return out

    def loss(flat):
        return jnp.sum(jnp.sin(with_network_arrays(net, unflatten(flat))(x)))

    return loss, flat0


@pytest.mark.parametrize("which", ["mlp", "conv"])
def test_gradients_match_finite_differences(which):
    if which == "mlp":
        net = load_network(
            _net(
                [
                    ("l1", "Linear", {"in_features": 3, "out_features": 4}),
                    ("l2", "Linear", {"in_features": 4, "out_features": 2}),
                ],
                [
                    ("l1", "call_module", "l1", ["x"], {}),
                    ("t", "call_method", "tanh", ["l1"], {}),
                    ("l2", "call_module", "l2", ["t"], {}),
                    ("output", "output", "output", ["l2"], {}),
                ],
            )
        )
        x = np.array([0.3, -0.7, 1.1])
    else:
        net = load_network(
            _net(
                [
                    (
                        "c",
                        "Conv1d",
                        {
                            "in_channels": 2,
                            "out_channels": 3,
                            "kernel_size": 3,
                            "padding": 1,
                            "stride": 2,
                        },
                    ),
                    ("n", "BatchNorm1d", {"num_features": 3}),
                    ("p", "AvgPool1d", {"kernel_size": 2}),
                    ("f", "Flatten", {}),
                    ("l", "Linear", {"in_features": 6, "out_features": 1}),
                ],
                [
                    ("c", "call_module", "c", ["x"], {}),
                    ("n", "call_module", "n", ["c"], {}),
                    ("s", "call_function", "silu", ["n"], {}),
                    ("p", "call_module", "p", ["s"], {}),
                    ("f", "call_module", "f", ["p"], {}),
                    ("l", "call_module", "l", ["f"], {}),
                    ("output", "output", "output", ["l"], {}),
                ],
            )
        )
        x = np.random.default_rng(7).normal(size=(2, 2, 9))
    net = init_network(net, jax.random.key(3))
    loss, flat0 = _flat_loss(net, x)
    grad = jax.jit(jax.grad(loss))(jnp.asarray(flat0))
    fd = central_difference(jax.jit(loss), flat0, h=1e-6)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


def test_vmap_and_no_recompilation_for_new_weights():
    case = SAMPLE / "042"
    net = load_network(case / "net.yaml")
    traces = []

    @eqx.filter_jit
    def f(n, x):
        traces.append(1)
        return n(x)

    x = read_hdf5_arrays(case / "net_input_1.hdf5", "inputs")["input0"]
    for i in (1, 2, 3):
        f(with_network_arrays(net, read_network_arrays(case / f"net_ps_{i}.hdf5", "net0")), x)
    assert len(traces) == 1
    # vmap over a stack of inputs (each a full PyTorch batch)
    n1 = with_network_arrays(net, read_network_arrays(case / "net_ps_1.hdf5", "net0"))
    xs = np.stack([x, 2 * x])
    out = jax.vmap(n1)(xs)
    np.testing.assert_allclose(out[1], n1(2 * x), rtol=1e-12)
    assert out.dtype == jnp.float64


# ---------------------------------------------------------------- round trip, init


def test_write_and_read_back_gives_the_same_network(tmp_path):
    case = SAMPLE / "053"
    net = load_network(case / "net.yaml")
    net = with_network_arrays(net, read_network_arrays(case / "net_ps_2.hdf5", "net0"))
    write_network(net, tmp_path / "net.yaml")
    write_network_arrays(tmp_path / "ps.hdf5", {net.id: network_arrays(net)})
    with h5py.File(tmp_path / "ps.hdf5") as f:
        assert f["metadata/pytorch_format"][()] == 1
        assert f["parameters/net0/layer1/weight"].shape == (5, 20)
    back = load_network(tmp_path / "net.yaml")
    back = with_network_arrays(back, read_network_arrays(tmp_path / "ps.hdf5", "net0"))
    assert network_to_yaml(back) == network_to_yaml(net)
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(net)
    xs = [read_hdf5_arrays(case / f"net_input_2_arg{j}.hdf5", "inputs")["input0"] for j in (0, 1)]
    np.testing.assert_array_equal(back(*xs), net(*xs))
    ref = read_hdf5_arrays(case / "net_output_2.hdf5", "outputs")["output0"]
    np.testing.assert_allclose(back(*xs), ref, rtol=1e-5, atol=1e-5)


def test_read_hdf5_arrays_nested_groups(tmp_path):
    path = tmp_path / "inputs.hdf5"
    with h5py.File(path, "w") as f:
        f["inputs/net6_input2/cond1/data"] = np.arange(3.0)
        f["inputs/net6_input2/cond2/data"] = np.ones((2, 2))
        f["inputs/input0/data"] = np.zeros(2)
    arrays = read_hdf5_arrays(path, "inputs")
    assert set(arrays) == {"net6_input2", "input0"}
    np.testing.assert_array_equal(arrays["net6_input2"]["cond1"], np.arange(3.0))
    assert arrays["net6_input2"]["cond2"].shape == (2, 2)


def test_init_network_uses_pytorch_bounds():
    net = _single("Linear", {"in_features": 16, "out_features": 200})
    w = np.asarray(init_network(net, jax.random.key(0)).layers["l"].weight)
    assert np.abs(w).max() <= 0.25 and np.abs(w).max() > 0.24
    conv = _single("ConvTranspose2d", {"in_channels": 3, "out_channels": 4, "kernel_size": 2})
    w = np.asarray(init_network(conv, jax.random.key(0)).layers["l"].weight)
    assert np.abs(w).max() <= 1 / 4  # fan_in = out_channels * kernel = 16


# ---------------------------------------------------------------- bad input


def test_unknown_layer_type_names_layer_and_type(tmp_path):
    data = _net([("mystery", "Transformer", {})], [("output", "output", "output", ["x"], {})])
    path = tmp_path / "bad.yaml"
    import yaml

    path.write_text(yaml.safe_dump(data))
    with pytest.raises(NetworkFormatError, match=r"bad\.yaml.*'mystery'.*'Transformer'"):
        load_network(path)
    assert issubclass(NetworkFormatError, ModelError)


def test_unknown_function_argument_and_op_are_rejected():
    bad_fn = _net(
        [],
        [("y", "call_function", "os.system", ["x"], {}), ("output", "output", "output", ["y"], {})],
    )
    with pytest.raises(NetworkFormatError, match="'os.system'"):
        load_network(bad_fn)
    bad_kw = _net(
        [],
        [
            ("y", "call_function", "relu", ["x"], {"slope": 2}),
            ("output", "output", "output", ["y"], {}),
        ],
    )
    with pytest.raises(NetworkFormatError, match="'y'.*relu"):
        load_network(bad_kw)
    with pytest.raises(NetworkFormatError, match="no argument.*'in_feature'"):
        _single("Linear", {"in_feature": 2, "out_features": 3})
    with pytest.raises(NetworkFormatError, match="get_attr"):
        load_network(
            _net([], [("y", "get_attr", "w", [], {}), ("output", "output", "output", ["x"], {})])
        )


def test_wrong_array_shape_names_the_array(tmp_path):
    net = _single("Linear", {"in_features": 2, "out_features": 3})
    with pytest.raises(NetworkFormatError, match=r"'l\.weight'.*\(2, 3\).*\(3, 2\)"):
        with_network_arrays(net, {"l.weight": np.zeros((2, 3))})
    with pytest.raises(NetworkFormatError, match="'l.gamma'"):
        with_network_arrays(net, {"l.gamma": np.zeros(3)})
    write_network_arrays(tmp_path / "ps.hdf5", {"other": {"l.bias": np.zeros(3)}})
    with pytest.raises(NetworkFormatError, match=r"ps\.hdf5.*'parameters/net'.*\['other'\]"):
        read_network_arrays(tmp_path / "ps.hdf5", "net")
